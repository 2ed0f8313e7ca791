"""Reproducible, labelled demo data: support tickets, customers and orders.

Tickets are written like real ones: an intent's core sentence in one of several phrasings and four
languages (English most, German, French and Spanish), optional context from another intent
(misleading wording: a refund request that opens like a shipping question), urgency cues, PII in the
text (names, e-mails, phones, IBANs, order numbers), and a share of spelling mistakes. The same seed
always gives the same data.
"""

from __future__ import annotations

import random
import string
from pathlib import Path

import pandas as pd

INTENTS = (
    "billing",
    "refund",
    "shipping",
    "account_access",
    "technical_fault",
    "cancellation",
    "legal_complaint",
)
URGENCIES = ("low", "normal", "high", "urgent")
LANGUAGE_SHARES = {"en": 0.64, "de": 0.14, "fr": 0.11, "es": 0.11}
CHANNELS = ("email", "web_form", "chat", "app")
PRODUCTS = ("router X2", "smart plug", "mesh kit", "camera C1", "thermostat T3", "speaker S")

# Core phrasings per intent and language; {order} and {product} are filled in.
_CORE: dict[str, dict[str, tuple[str, ...]]] = {
    "billing": {
        "en": (
            "I was charged twice for order {order} this month.",
            "My invoice shows an amount I do not recognise.",
            "Why did my card get billed again for the {product} subscription?",
            "The invoice for {order} has the wrong VAT number and total.",
            "There is a payment on my statement that I never authorised.",
        ),
        "de": (
            "Mir wurde die Bestellung {order} doppelt abgebucht.",
            "Auf meiner Rechnung steht ein Betrag, den ich nicht kenne.",
            "Warum wurde meine Karte erneut für das Abo belastet?",
        ),
        "fr": (
            "J'ai été débité deux fois pour la commande {order}.",
            "Ma facture indique un montant que je ne reconnais pas.",
            "Pourquoi ma carte a-t-elle été prélevée à nouveau pour l'abonnement ?",
        ),
        "es": (
            "Me han cobrado dos veces el pedido {order}.",
            "Mi factura muestra un importe que no reconozco.",
            "¿Por qué me cobraron otra vez la suscripción en la tarjeta?",
        ),
    },
    "refund": {
        "en": (
            "Please refund order {order}, I returned the {product} last week.",
            "I want my money back for the {product}.",
            "The return was accepted but the refund for {order} never arrived.",
            "Can you pay back the amount for the broken {product}?",
            "I sent the item back two weeks ago, where is my reimbursement?",
        ),
        "de": (
            "Bitte erstatten Sie mir den Betrag für Bestellung {order}.",
            "Ich möchte mein Geld für das {product} zurück.",
            "Die Rücksendung ist angekommen, aber die Erstattung fehlt noch.",
        ),
        "fr": (
            "Merci de rembourser la commande {order}, j'ai renvoyé le produit.",
            "Je veux être remboursé pour le {product}.",
            "Le retour a été accepté mais je n'ai jamais reçu le remboursement.",
        ),
        "es": (
            "Por favor, reembolsen el pedido {order}, ya devolví el producto.",
            "Quiero que me devuelvan el dinero del {product}.",
            "Aceptaron la devolución pero el reembolso nunca llegó.",
        ),
    },
    "shipping": {
        "en": (
            "Where is my parcel? Order {order} has not arrived yet.",
            "The tracking for {order} has not moved for five days.",
            "Can I change the delivery address for order {order}?",
            "The courier says delivered but there is no package at my door.",
            "When will the {product} be shipped?",
        ),
        "de": (
            "Wo ist mein Paket? Bestellung {order} ist noch nicht angekommen.",
            "Die Sendungsverfolgung für {order} bewegt sich seit Tagen nicht.",
            "Kann ich die Lieferadresse für {order} ändern?",
        ),
        "fr": (
            "Où est mon colis ? La commande {order} n'est pas arrivée.",
            "Le suivi de la commande {order} ne bouge plus depuis cinq jours.",
            "Puis-je changer l'adresse de livraison de la commande {order} ?",
        ),
        "es": (
            "¿Dónde está mi paquete? El pedido {order} no ha llegado.",
            "El seguimiento del pedido {order} no se mueve desde hace días.",
            "¿Puedo cambiar la dirección de entrega del pedido {order}?",
        ),
    },
    "account_access": {
        "en": (
            "I cannot log in to my account, the password reset email never comes.",
            "My account is locked after too many login attempts.",
            "The two-factor code is not accepted when I sign in.",
            "I changed my phone and lost access to the authenticator app.",
            "Someone changed my account email, I can no longer sign in.",
        ),
        "de": (
            "Ich kann mich nicht anmelden, die Mail zum Zurücksetzen kommt nicht.",
            "Mein Konto ist nach zu vielen Anmeldeversuchen gesperrt.",
            "Der Bestätigungscode wird beim Login nicht akzeptiert.",
        ),
        "fr": (
            "Je n'arrive pas à me connecter, l'e-mail de réinitialisation n'arrive pas.",
            "Mon compte est bloqué après trop de tentatives de connexion.",
            "Le code de vérification est refusé à la connexion.",
        ),
        "es": (
            "No puedo iniciar sesión, el correo para restablecer la contraseña no llega.",
            "Mi cuenta está bloqueada tras demasiados intentos de acceso.",
            "El código de verificación no funciona al entrar.",
        ),
    },
    "technical_fault": {
        "en": (
            "The {product} keeps disconnecting from wifi every few minutes.",
            "After the last firmware update the {product} does not turn on.",
            "The app crashes when I open the settings of my {product}.",
            "My {product} shows a red light and error code E42.",
            "The {product} overheats and restarts by itself.",
        ),
        "de": (
            "Das {product} verliert alle paar Minuten die WLAN-Verbindung.",
            "Nach dem Firmware-Update startet das {product} nicht mehr.",
            "Die App stürzt ab, wenn ich die Einstellungen öffne.",
        ),
        "fr": (
            "Le {product} se déconnecte du wifi toutes les quelques minutes.",
            "Après la mise à jour, le {product} ne s'allume plus.",
            "L'application plante quand j'ouvre les réglages.",
        ),
        "es": (
            "El {product} se desconecta del wifi cada pocos minutos.",
            "Después de la actualización el {product} no enciende.",
            "La aplicación se cierra al abrir los ajustes.",
        ),
    },
    "cancellation": {
        "en": (
            "Please cancel my subscription at the end of this month.",
            "I want to cancel order {order} before it ships.",
            "How do I terminate my contract? I no longer need the service.",
            "Stop my membership and do not renew it.",
            "Cancel the {product} plan, I am moving abroad.",
        ),
        "de": (
            "Bitte kündigen Sie mein Abo zum Monatsende.",
            "Ich möchte die Bestellung {order} stornieren, bevor sie versendet wird.",
            "Wie kann ich meinen Vertrag kündigen?",
        ),
        "fr": (
            "Merci de résilier mon abonnement à la fin du mois.",
            "Je souhaite annuler la commande {order} avant l'expédition.",
            "Comment résilier mon contrat ?",
        ),
        "es": (
            "Por favor, cancelen mi suscripción a final de mes.",
            "Quiero anular el pedido {order} antes de que lo envíen.",
            "¿Cómo doy de baja mi contrato?",
        ),
    },
    "legal_complaint": {
        "en": (
            "This is unacceptable. If order {order} is not resolved I will take legal action.",
            "My lawyer will contact you about the defective {product}.",
            "I am filing a complaint with the consumer protection agency.",
            "I will sue your company if I do not get an answer this week.",
            "Consider this a formal notice before court proceedings.",
        ),
        "de": (
            "Wenn das nicht gelöst wird, schalte ich meinen Anwalt ein.",
            "Ich werde mich bei der Verbraucherzentrale beschweren und klagen.",
            "Dies ist eine formelle Mahnung vor einem Gerichtsverfahren.",
        ),
        "fr": (
            "Si ce n'est pas réglé, je saisirai mon avocat.",
            "Je vais porter plainte auprès de l'association de consommateurs.",
            "Ceci est une mise en demeure avant une action en justice.",
        ),
        "es": (
            "Si no se resuelve, mi abogado tomará acciones legales.",
            "Voy a presentar una denuncia ante consumo.",
            "Esto es un aviso formal antes de ir a juicio.",
        ),
    },
}
# Misleading wording: a sentence of a confusable intent comes first (a refund request that opens like a
# shipping question), joined by a turn people use when the real request follows.
_CONFUSABLE = {
    "refund": ("shipping", "billing", "cancellation"),
    "billing": ("refund", "cancellation"),
    "shipping": ("refund", "cancellation"),
    "cancellation": ("refund", "billing"),
    "technical_fault": ("account_access", "refund"),
    "account_access": ("technical_fault",),
    "legal_complaint": ("refund", "technical_fault", "shipping"),
}
_TURN = {
    "en": ("But that is not my question:", "Anyway,", "Actually what I need:"),
    "de": ("Aber eigentlich geht es um Folgendes:", "Jedenfalls:"),
    "fr": ("Mais ma vraie question :", "Bref,"),
    "es": ("Pero mi pregunta es otra:", "En fin,"),
}
_VAGUE_SUBJECTS = {
    "en": ("Question", "Help needed", "Problem with my order {order}", "Re: your email", "Complaint", "Hi"),
    "de": ("Frage", "Problem mit Bestellung {order}", "Hilfe", "AW: Ihre Nachricht"),
    "fr": ("Question", "Problème avec la commande {order}", "Aide", "RE: votre message"),
    "es": ("Pregunta", "Problema con el pedido {order}", "Ayuda", "RE: su mensaje"),
}
_FILLER = {
    "en": (
        "I have been a customer for years.",
        "I tried calling but nobody answered.",
        "Thanks in advance.",
        "I already wrote to you last week about my order.",
        "The app and the website say different things.",
    ),
    "de": ("Ich bin seit Jahren Kunde.", "Danke im Voraus.", "Ich habe schon angerufen."),
    "fr": ("Je suis client depuis des années.", "Merci d'avance.", "J'ai déjà appelé."),
    "es": ("Soy cliente desde hace años.", "Gracias de antemano.", "Ya llamé por teléfono."),
}
_GREETING = {"en": "Hello,", "de": "Hallo,", "fr": "Bonjour,", "es": "Hola,"}
_SIGN_OFF = {"en": "Regards,", "de": "Viele Grüße,", "fr": "Cordialement,", "es": "Saludos,"}
_URGENCY_CUES = {
    "low": {"en": "No rush.", "de": "Keine Eile.", "fr": "Rien d'urgent.", "es": "Sin prisa."},
    "normal": {"en": "", "de": "", "fr": "", "es": ""},
    "high": {
        "en": "Please answer soon.",
        "de": "Bitte antworten Sie bald.",
        "fr": "Merci de répondre vite.",
        "es": "Respondan pronto, por favor.",
    },
    "urgent": {
        "en": "This is urgent, I need it fixed today!",
        "de": "Das ist dringend, bitte heute lösen!",
        "fr": "C'est urgent, il faut régler ça aujourd'hui !",
        "es": "¡Es urgente, necesito una solución hoy!",
    },
}
_URGENCY_WEIGHTS = {
    "legal_complaint": (0.0, 0.2, 0.4, 0.4),
    "account_access": (0.05, 0.35, 0.35, 0.25),
    "billing": (0.15, 0.5, 0.25, 0.1),
}
_FIRST = ("Jane", "Lukas", "Amélie", "Carlos", "Sofia", "Tom", "Greta", "Léa", "Diego", "Mia", "Omar", "Ines")
_LAST = ("Doe", "Müller", "Dubois", "García", "Rossi", "Smith", "Schmidt", "Martin", "López", "Nowak")
_IBANS = ("DE89 3704 0044 0532 0130 00", "FR14 2004 1010 0505 0001 3M02 606", "ES91 2100 0418 4502 0005 1332")


def misspell(text: str, rate: float, rng: random.Random) -> str:
    """Typos as people make them: swapped, dropped, doubled or neighbouring letters in some words."""
    words = text.split(" ")
    for index, word in enumerate(words):
        if len(word) < 4 or rng.random() >= rate:
            continue
        position = rng.randrange(1, len(word) - 1)
        kind = rng.randrange(4)
        if kind == 0:
            word = word[: position - 1] + word[position] + word[position - 1] + word[position + 1 :]
        elif kind == 1:
            word = word[:position] + word[position + 1 :]
        elif kind == 2:
            word = word[:position] + word[position] + word[position:]
        else:
            word = word[:position] + rng.choice(string.ascii_lowercase) + word[position + 1 :]
        words[index] = word
    return " ".join(words)


def make_customers(n: int, seed: int) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for index in range(n):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        rows.append(
            {
                "customer_id": f"C-{index:05d}",
                "name": f"{first} {last}",
                "email": f"{first}.{last}{index}@example.com".lower(),
                "phone": f"+49 30 {rng.randrange(1000, 9999)} {rng.randrange(1000, 9999)}",
                "language": _pick_language(rng),
                "tier": rng.choice(("standard", "standard", "premium")),
            }
        )
    return pd.DataFrame(rows)


def make_orders(customers: pd.DataFrame, per_customer: int, seed: int) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for customer_id in customers["customer_id"]:
        for _ in range(rng.randint(1, per_customer)):
            rows.append(
                {
                    "order_id": f"O-{len(rows) + 100000}",
                    "customer_id": customer_id,
                    "product": rng.choice(PRODUCTS),
                    "amount_eur": round(rng.uniform(19, 480), 2),
                    "status": rng.choice(("delivered", "delivered", "shipped", "processing", "returned")),
                    "ordered_at": pd.Timestamp("2026-09-01", tz="UTC") + pd.Timedelta(days=rng.randrange(80)),
                }
            )
    return pd.DataFrame(rows)


def _pick_language(rng: random.Random) -> str:
    return rng.choices(list(LANGUAGE_SHARES), weights=list(LANGUAGE_SHARES.values()))[0]


def generate_tickets(
    n: int,
    seed: int,
    customers: pd.DataFrame | None = None,
    orders: pd.DataFrame | None = None,
    *,
    misleading_share: float = 0.12,
    typo_rate: float = 0.04,
    id_prefix: str = "T",
    start: str = "2026-11-20",
) -> pd.DataFrame:
    """``n`` labelled tickets (contract columns plus ``intent``, ``urgency`` and ``misleading``)."""
    rng = random.Random(seed)
    customers = customers if customers is not None else make_customers(max(50, n // 20), seed)
    orders = orders if orders is not None else make_orders(customers, 3, seed)
    orders_by_customer = orders.groupby("customer_id")["order_id"].apply(list).to_dict()
    rows = []
    for index in range(n):
        customer = customers.iloc[rng.randrange(len(customers))]
        language = customer["language"] if rng.random() < 0.9 else _pick_language(rng)
        intent = rng.choice(INTENTS)
        urgency = rng.choices(URGENCIES, weights=_URGENCY_WEIGHTS.get(intent, (0.25, 0.45, 0.2, 0.1)))[0]
        order_id = rng.choice(orders_by_customer.get(customer["customer_id"], ["O-000000"]))
        fill = {"order": order_id, "product": rng.choice(PRODUCTS)}
        phrasings = _CORE[intent][language]
        templates = [rng.choice(phrasings)]
        misleading = rng.random() < misleading_share
        if misleading:
            confusable = _CORE[rng.choice(_CONFUSABLE[intent])][language]
            templates[:0] = [rng.choice(confusable), rng.choice(_TURN[language])]
        elif rng.random() < 0.3:
            templates.append(rng.choice(phrasings))
        if rng.random() < 0.5:
            templates.insert(rng.randrange(len(templates) + 1), rng.choice(_FILLER[language]))
        if rng.random() < 0.7:  # many people never say how urgent it is
            templates.append(_URGENCY_CUES[urgency][language])
        mentions_order = any("{order}" in template for template in templates)
        sentences = [template.format(**fill) for template in templates]
        sentences.append(_pii_sentence(rng, customer))
        body = " ".join(s for s in sentences if s)
        body = (
            f"{_GREETING[language]} {misspell(body, typo_rate, rng)} {_SIGN_OFF[language]} {customer['name']}"
        )
        subject_template = rng.choice(_VAGUE_SUBJECTS[language] if rng.random() < 0.35 else phrasings)
        subject = misspell(subject_template.format(**fill)[:60], typo_rate, rng)
        rows.append(
            {
                "ticket_id": f"{id_prefix}{index:06d}",
                "customer_id": customer["customer_id"],
                "channel": rng.choice(CHANNELS),
                "language": language,
                "subject": subject,
                "body": body,
                "created_at": pd.Timestamp(start, tz="UTC") + pd.Timedelta(seconds=rng.randrange(86400 * 3)),
                "order_id": order_id if mentions_order or rng.random() < 0.5 else None,
                "intent": intent,
                "urgency": urgency,
                "misleading": misleading,
            }
        )
    return pd.DataFrame(rows)


def _pii_sentence(rng: random.Random, customer: pd.Series) -> str:
    """Contact details people paste into tickets (in English: common in every language's tickets)."""
    choice = rng.randrange(5)
    if choice == 0:
        return f"You can reach me at {customer['email']} or {customer['phone']}."
    if choice == 1:
        return f"My IBAN is {rng.choice(_IBANS)}."
    if choice == 2:
        return f"This is {customer['name']} writing."
    return ""


def write_demo_files(
    history_dir: Path, landing_dir: Path, *, tickets: int, batches: int, batch_size: int, seed: int
) -> dict[str, pd.DataFrame]:
    """Customers, orders and labelled tickets into ``history_dir``; unlabelled ticket batches into
    ``landing_dir`` (written under a temporary name, then renamed, as the landing rules ask).
    Returns the landed batches with their labels, for evaluation."""
    history_dir.mkdir(parents=True, exist_ok=True)
    landing_dir.mkdir(parents=True, exist_ok=True)
    customers = make_customers(max(100, tickets // 10), seed)
    orders = make_orders(customers, 3, seed)
    customers.to_csv(history_dir / "customers.csv", index=False)
    orders.to_csv(history_dir / "orders.csv", index=False)
    generate_tickets(tickets, seed, customers, orders, id_prefix="H").to_csv(
        history_dir / "tickets.csv", index=False
    )
    landed = {}
    for number in range(batches):
        batch = generate_tickets(batch_size, seed + 1 + number, customers, orders, id_prefix=f"B{number}-")
        name = f"tickets_{number + 1:03d}.csv"
        partial = landing_dir / f".{name}.tmp"
        batch.drop(columns=["intent", "urgency", "misleading"]).to_csv(partial, index=False)
        partial.rename(landing_dir / name)
        landed[name] = batch
    return landed
