"""Templated replies for simple tickets: a frame in the ticket's language around the best knowledge-base
article for its intent, citing the article. No model writes these, so they cost nothing and say
only what the article says."""

from __future__ import annotations

import re

import pandas as pd

from orchestration_pipelines.support.knowledge import KnowledgeBase

_FRAMES = {
    "en": (
        "Dear {name},",
        "Hello,",
        "thank you for contacting us about {topic}.",
        'Our help article "{title}" ({article_id}) explains what happens next:',
        "Kind regards,\nCustomer Care",
    ),
    "de": (
        "Guten Tag {name},",
        "Guten Tag,",
        "vielen Dank für Ihre Nachricht zum Thema {topic}.",
        'Unser Hilfeartikel "{title}" ({article_id}, auf Englisch) erklärt die nächsten Schritte:',
        "Freundliche Grüße\nIhr Kundenservice",
    ),
    "fr": (
        "Bonjour {name},",
        "Bonjour,",
        "merci de nous avoir contactés au sujet de {topic}.",
        "Notre article d'aide « {title} » ({article_id}, en anglais) explique la suite :",
        "Cordialement,\nLe service client",
    ),
    "es": (
        "Hola, {name}:",
        "Hola:",
        "gracias por escribirnos sobre {topic}.",
        'Nuestro artículo de ayuda "{title}" ({article_id}, en inglés) explica los próximos pasos:',
        "Un saludo,\nAtención al cliente",
    ),
}
_TOPICS = {
    "en": {
        "billing": "your invoice",
        "refund": "your refund",
        "shipping": "your delivery",
        "account_access": "signing in to your account",
        "technical_fault": "your device",
        "cancellation": "your cancellation",
        "legal_complaint": "your complaint",
    },
    "de": {
        "billing": "Ihre Rechnung",
        "refund": "Ihre Erstattung",
        "shipping": "Ihre Lieferung",
        "account_access": "die Anmeldung",
        "technical_fault": "Ihr Gerät",
        "cancellation": "Ihre Kündigung",
        "legal_complaint": "Ihre Beschwerde",
    },
    "fr": {
        "billing": "votre facture",
        "refund": "votre remboursement",
        "shipping": "votre livraison",
        "account_access": "la connexion à votre compte",
        "technical_fault": "votre appareil",
        "cancellation": "votre résiliation",
        "legal_complaint": "votre réclamation",
    },
    "es": {
        "billing": "su factura",
        "refund": "su reembolso",
        "shipping": "su envío",
        "account_access": "el acceso a su cuenta",
        "technical_fault": "su dispositivo",
        "cancellation": "su cancelación",
        "legal_complaint": "su reclamación",
    },
}
_GENERIC_TOPIC = {"en": "your request", "de": "Ihr Anliegen", "fr": "votre demande", "es": "su consulta"}
# Template fields, gateway placeholders, and the usual stand-ins people forget to replace.
_PLACEHOLDER = re.compile(
    r"\{[A-Za-z_]+\}|\[[A-Z][A-Z_]*_\d+(?:_PART_\d+)?\]|\bTODO\b|\bXXX+\b|<[A-Za-z_ ]+>"
)


def unresolved_placeholders(text: str) -> list[str]:
    return _PLACEHOLDER.findall(text)


def templated_replies(tickets: pd.DataFrame, knowledge_base: KnowledgeBase) -> pd.DataFrame:
    """One reply per ticket (``ticket_id``, ``language``, ``intent``, ``customer_name``, ``text``), or
    ``reply`` = None with the reason when no article fits (the ticket then goes to a person)."""
    hits = knowledge_base.best(tickets["text"].tolist(), tickets["intent"].tolist())
    rows = []
    for ticket, hit in zip(tickets.itertuples(index=False), hits, strict=True):
        if hit is None:
            rows.append((ticket.ticket_id, None, None, None, 0.0, "no knowledge-base article matches"))
            continue
        language = ticket.language if ticket.language in _FRAMES else "en"
        named, unnamed, thanks, cites, sign_off = _FRAMES[language]
        name = (
            ticket.customer_name if isinstance(ticket.customer_name, str) and ticket.customer_name else None
        )
        topic = _TOPICS[language].get(ticket.intent, _GENERIC_TOPIC[language])
        article = hit.article
        reply = "\n\n".join(
            [
                named.format(name=name) if name else unnamed,
                thanks.format(topic=topic),
                f"{cites.format(title=article.title, article_id=article.id)}\n{article.text}",
                sign_off,
            ]
        )
        rows.append((ticket.ticket_id, reply, article.id, article.title, round(hit.score, 4), ""))
    return pd.DataFrame(
        rows, columns=["ticket_id", "reply", "article_id", "article_title", "retrieval_score", "reason"]
    )
