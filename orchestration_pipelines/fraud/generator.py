"""Reproducible synthetic card transactions with labelled fraud patterns.

Legitimate behaviour comes from a fixed population of accounts (home country, spending level,
devices, favourite merchant categories, daily rhythm). Fraud is injected as the four patterns
analysts see most: card-testing bursts, impossible travel, account takeover on a new device and a
high amount at a merchant category the account never uses. The fraud share stays well under 1%.
An emerging pattern (``EMERGING_PATTERNS``) appears only when asked for: fraud the history never
showed, which a model trained on that history misses until analysts' corrections teach it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from orchestration_pipelines.fraud.contract import CHANNELS, EUR_PER_UNIT

# Home country -> the billing currency of accounts domiciled there.
HOME_CURRENCIES = {
    "DE": "EUR",
    "FR": "EUR",
    "NL": "EUR",
    "ES": "EUR",
    "IT": "EUR",
    "GB": "GBP",
    "CH": "CHF",
    "PL": "PLN",
    "SE": "SEK",
    "US": "USD",
}
HOME_COUNTRIES = list(HOME_CURRENCIES)
HOME_WEIGHTS = [0.22, 0.16, 0.09, 0.1, 0.1, 0.12, 0.04, 0.06, 0.03, 0.08]
FAR_COUNTRIES = ["BR", "NG", "TH", "ID", "JP"]
EVERYDAY_MCCS = ["5411", "5812", "5814", "5541", "5912", "5311", "4111", "5999", "5651", "7832", "4121"]
RISKY_MCCS = ["5944", "5732", "4829", "7995"]  # jewellery, electronics, money transfer, gambling
DIGITAL_MCCS = ["5815", "5816", "5818"]
# Hour-of-day weights: quiet nights, busy lunch and evening.
DIURNAL = np.array([1, 0.5, 0.3, 0.2, 0.2, 0.4, 1, 2, 3, 3.5, 4, 5, 6, 5, 4.5, 4.5, 5, 6, 6.5, 6, 5, 4, 3, 2])
# Share of fraudulent transactions contributed by each pattern.
PATTERN_SHARES = {
    "card_testing": 0.35,
    "impossible_travel": 0.2,
    "account_takeover": 0.25,
    "new_category_high_amount": 0.2,
}


@dataclass(frozen=True)
class AccountPopulation:
    """The accounts behind every generated batch, so history and new batches tell one story."""

    account_id: np.ndarray
    home_country: np.ndarray
    usual_country: np.ndarray
    currency: np.ndarray
    log_amount_mean: np.ndarray
    daily_rate: np.ndarray
    n_devices: np.ndarray
    favourite_mccs: np.ndarray  # (n_accounts, 4)

    @property
    def size(self) -> int:
        return len(self.account_id)


def make_population(n_accounts: int, seed: int = 7) -> AccountPopulation:
    rng = np.random.default_rng(seed)
    home = rng.choice(HOME_COUNTRIES, size=n_accounts, p=HOME_WEIGHTS)
    currency = np.array(list(HOME_CURRENCIES.values()))[pd.Index(HOME_COUNTRIES).get_indexer(home)]
    favourites = np.array([rng.choice(EVERYDAY_MCCS, size=4, replace=False) for _ in range(n_accounts)])
    # A few cardholders live abroad: they spend in another country than their card's, every time.
    abroad = rng.random(n_accounts) < 0.02
    return AccountPopulation(
        account_id=np.char.add("A", np.char.zfill(np.arange(n_accounts).astype(str), 7)),
        home_country=home,
        usual_country=np.where(abroad, rng.choice(HOME_COUNTRIES, size=n_accounts), home),
        currency=currency,
        log_amount_mean=rng.normal(3.2, 0.6, n_accounts)
        - np.log(np.array([EUR_PER_UNIT[c] for c in currency])),
        daily_rate=rng.gamma(2.0, 1.0, n_accounts),
        n_devices=rng.integers(1, 3, n_accounts),
        favourite_mccs=favourites,
    )


def _diurnal_timestamps(rng: np.random.Generator, n: int, start: pd.Timestamp, days: float) -> np.ndarray:
    day = rng.integers(0, max(int(np.ceil(days)), 1), n)
    hour = rng.choice(24, size=n, p=DIURNAL / DIURNAL.sum())
    seconds = day * 86400 + hour * 3600 + rng.integers(0, 3600, n)
    seconds = np.minimum(seconds, int(days * 86400) - 1)
    return start.value + seconds.astype("int64") * 1_000_000_000


def _frame(
    pop: AccountPopulation,
    acc: np.ndarray,
    ts_ns: np.ndarray,
    amount: np.ndarray,
    mcc: np.ndarray,
    country: np.ndarray,
    channel: np.ndarray,
    device: np.ndarray,
    card: np.ndarray,
    pattern: str | None,
) -> pd.DataFrame:
    account_ids = pop.account_id[acc]
    return pd.DataFrame(
        {
            "account_id": account_ids,
            "card_id": np.char.add(np.char.replace(account_ids, "A", "C"), card.astype(str)),
            "timestamp": pd.to_datetime(ts_ns, utc=True),
            "amount": np.round(amount, 2),
            "currency": pop.currency[acc],
            "merchant_id": np.char.add(np.char.add(np.char.add("M", mcc), "-"), (acc % 97).astype(str)),
            "merchant_category": mcc,
            "country": country,
            "channel": channel,
            "device_id": device,
            "is_fraud": np.int8(pattern is not None),
            "fraud_pattern": pattern or "",
        }
    )


def _legitimate(rng, pop: AccountPopulation, start: pd.Timestamp, days: float) -> pd.DataFrame:
    counts = rng.poisson(pop.daily_rate * days)
    acc = np.repeat(np.arange(pop.size), counts)
    n = len(acc)
    ts = _diurnal_timestamps(rng, n, start, days)
    country = pop.usual_country[acc]
    device = np.char.add(
        np.char.replace(pop.account_id[acc], "A", "D"),
        (rng.integers(0, 2, n) % pop.n_devices[acc]).astype(str),
    )
    # Honest look-alikes keep the problem hard: a new phone, a rare big-ticket purchase.
    new_phone = rng.random(n) < 0.01
    device = np.where(new_phone, np.char.add("DN", rng.integers(0, 10**6, n).astype(str)), device)
    big_ticket = rng.random(n) < 0.003
    amount = np.exp(rng.normal(pop.log_amount_mean[acc], 0.7) + big_ticket * rng.uniform(1.0, 3.0, n))
    mcc = np.where(big_ticket, rng.choice(RISKY_MCCS, size=n), pop.favourite_mccs[acc, rng.integers(0, 4, n)])
    return _frame(
        pop,
        acc,
        ts,
        amount=amount,
        mcc=mcc,
        country=country,
        channel=rng.choice(CHANNELS, size=n, p=[0.35, 0.3, 0.3, 0.05]),
        device=device,
        card=rng.integers(0, 2, n),
        pattern=None,
    )


def _card_testing(rng, pop, start, days, n_target: int) -> pd.DataFrame:
    bursts = max(n_target // 15, 1)
    sizes = rng.integers(8, 23, bursts)
    acc = np.repeat(rng.integers(0, pop.size, bursts), sizes)
    burst_start = np.repeat(_diurnal_timestamps(rng, bursts, start, days), sizes)
    n = len(acc)
    offsets = rng.integers(0, 8 * 60, n).astype("int64") * 1_000_000_000
    return _frame(
        pop,
        acc,
        np.minimum(burst_start + offsets, start.value + int(days * 86400e9) - 1),
        amount=rng.uniform(0.5, 4.0, n) / np.array([EUR_PER_UNIT[c] for c in pop.currency[acc]]),
        mcc=rng.choice(DIGITAL_MCCS, size=n),
        country=np.repeat(rng.choice(FAR_COUNTRIES, size=bursts), sizes),
        channel=np.full(n, "ecommerce"),
        device=np.repeat(np.char.add("DX", rng.integers(0, 10**6, bursts).astype(str)), sizes),
        card=np.zeros(n, dtype=int),
        pattern="card_testing",
    )


def _impossible_travel(rng, pop, legit: pd.DataFrame, n_target: int) -> pd.DataFrame:
    anchor = legit.iloc[rng.integers(0, len(legit), max(n_target, 1))]
    acc = pd.Index(pop.account_id).get_indexer(anchor["account_id"])
    n = len(acc)
    ts = (
        anchor["timestamp"].to_numpy("datetime64[ns]").astype("int64")
        + rng.integers(10, 90, n) * 60_000_000_000
    )
    return _frame(
        pop,
        acc,
        ts,
        amount=np.exp(rng.normal(pop.log_amount_mean[acc] + 1.5, 0.6)),
        mcc=rng.choice(EVERYDAY_MCCS + RISKY_MCCS, size=n),
        country=np.where(
            rng.random(n) < 0.4, rng.choice(HOME_COUNTRIES, size=n), rng.choice(FAR_COUNTRIES, size=n)
        ),
        channel=rng.choice(["card_present", "atm"], size=n),
        device=np.char.add(np.char.replace(pop.account_id[acc], "A", "D"), "0"),
        card=np.zeros(n, dtype=int),
        pattern="impossible_travel",
    )


def _account_takeover(rng, pop, start, days, n_target: int) -> pd.DataFrame:
    takeovers = max(n_target // 3, 1)
    sizes = rng.integers(2, 5, takeovers)
    victims = rng.integers(0, pop.size, takeovers)
    acc = np.repeat(victims, sizes)
    n = len(acc)
    ts = (
        np.repeat(_diurnal_timestamps(rng, takeovers, start, days), sizes)
        + rng.integers(0, 3600, n).astype("int64") * 1_000_000_000
    )
    return _frame(
        pop,
        acc,
        np.minimum(ts, start.value + int(days * 86400e9) - 1),
        amount=np.exp(rng.normal(pop.log_amount_mean[acc] + 1.2, 0.8)),
        mcc=rng.choice(RISKY_MCCS + EVERYDAY_MCCS[:3], size=n),
        country=np.where(rng.random(n) < 0.5, pop.home_country[acc], rng.choice(FAR_COUNTRIES, size=n)),
        channel=np.full(n, "ecommerce"),
        device=np.repeat(np.char.add("DX", rng.integers(0, 10**6, takeovers).astype(str)), sizes),
        card=rng.integers(0, 2, n),
        pattern="account_takeover",
    )


def _new_category_high_amount(rng, pop, start, days, n_target: int) -> pd.DataFrame:
    n = max(n_target, 1)
    acc = rng.integers(0, pop.size, n)
    return _frame(
        pop,
        acc,
        _diurnal_timestamps(rng, n, start, days),
        amount=np.exp(pop.log_amount_mean[acc] + rng.uniform(1.0, 3.5, n)),
        mcc=rng.choice(RISKY_MCCS, size=n),
        country=pop.home_country[acc],
        channel=rng.choice(["card_present", "ecommerce"], size=n),
        device=np.char.add(np.char.replace(pop.account_id[acc], "A", "D"), "0"),
        card=rng.integers(0, 2, n),
        pattern="new_category_high_amount",
    )


def _night_cash_out(rng, pop, start, days, n_target: int) -> pd.DataFrame:
    """A cloned card emptied at home: a few ATM withdrawals within the hour in the small hours,
    each somewhat above the account's usual amount, on the account's own device and country."""
    sprees = max(n_target // 3, 1)
    sizes = rng.integers(2, 5, sprees)
    acc = np.repeat(rng.integers(0, pop.size, sprees), sizes)
    n = len(acc)
    night = rng.integers(0, max(int(np.ceil(days)), 1), sprees) * 86400 + rng.integers(1, 5, sprees) * 3600
    ts = start.value + (np.repeat(night, sizes) + rng.integers(0, 2700, n)).astype("int64") * 1_000_000_000
    return _frame(
        pop,
        acc,
        np.minimum(ts, start.value + int(days * 86400e9) - 1),
        amount=np.exp(pop.log_amount_mean[acc] + rng.uniform(0.3, 0.9, n)),
        mcc=np.full(n, "6011"),  # automated cash disbursement
        country=pop.usual_country[acc],
        channel=np.full(n, "atm"),
        device=np.char.add(np.char.replace(pop.account_id[acc], "A", "D"), "0"),
        card=np.zeros(n, dtype=int),
        pattern="night_cash_out",
    )


# Patterns absent from PATTERN_SHARES: generated only in the numbers asked for.
EMERGING_PATTERNS = {"night_cash_out": _night_cash_out}


def generate_transactions(
    pop: AccountPopulation,
    start: str | pd.Timestamp,
    days: float,
    seed: int,
    fraud_rate: float = 0.003,
    id_prefix: str = "T",
    emerging: dict[str, int] | None = None,
) -> pd.DataFrame:
    """Labelled transactions of ``pop`` over ``days`` from ``start``, sorted by time.

    ``is_fraud`` and ``fraud_pattern`` are the labels; drop them to make a landing batch. ``emerging``
    adds about that many cases of each named ``EMERGING_PATTERNS`` pattern.
    """
    rng = np.random.default_rng(seed)
    start = pd.Timestamp(start, tz="UTC") if pd.Timestamp(start).tzinfo is None else pd.Timestamp(start)
    legit = _legitimate(rng, pop, start, days)
    n_fraud = round(len(legit) * fraud_rate / (1 - fraud_rate))
    share = {p: round(n_fraud * s) for p, s in PATTERN_SHARES.items()}
    parts = [legit]
    if n_fraud:
        parts += [
            _card_testing(rng, pop, start, days, share["card_testing"]),
            _impossible_travel(rng, pop, legit, share["impossible_travel"]),
            _account_takeover(rng, pop, start, days, share["account_takeover"]),
            _new_category_high_amount(rng, pop, start, days, share["new_category_high_amount"]),
        ]
    for pattern, count in (emerging or {}).items():
        if pattern not in EMERGING_PATTERNS:
            raise ValueError(f"unknown emerging pattern {pattern!r}; known: {sorted(EMERGING_PATTERNS)}")
        parts.append(EMERGING_PATTERNS[pattern](rng, pop, start, days, count))
    df = pd.concat(parts, ignore_index=True).sort_values("timestamp", kind="stable", ignore_index=True)
    df.insert(0, "transaction_id", np.char.add(id_prefix, np.char.zfill(np.arange(len(df)).astype(str), 9)))
    return df


def unlabelled(df: pd.DataFrame) -> pd.DataFrame:
    """A landing batch as a bank would send it: no labels."""
    return df.drop(columns=["is_fraud", "fraud_pattern"])


def write_demo_files(
    history_dir: Path,
    landing_dir: Path,
    n_accounts: int = 5000,
    history_days: int = 30,
    batches: int = 3,
    seed: int = 7,
    start: str = "2026-10-01",
) -> dict[str, pd.DataFrame]:
    """Labelled history (Parquet) and one unlabelled CSV batch per following day in the landing folder.

    Returns the labelled batches by file name, for reports that compare decisions with the truth.
    Files are written under a temporary name and renamed, as any producer should.
    """
    pop = make_population(n_accounts, seed)
    history_dir.mkdir(parents=True, exist_ok=True)
    landing_dir.mkdir(parents=True, exist_ok=True)
    history = generate_transactions(pop, start, history_days, seed=seed, id_prefix="H")
    _write_atomically(history, history_dir / "history.parquet")
    labelled = {}
    for day in range(batches):
        when = pd.Timestamp(start) + pd.Timedelta(days=history_days + day)
        batch = generate_transactions(pop, when, 1, seed=seed + 1 + day, id_prefix=f"T{when:%Y%m%d}-")
        name = f"transactions_{when:%Y-%m-%d}.csv"
        _write_atomically(unlabelled(batch), landing_dir / name)
        labelled[name] = batch
    return labelled


def _write_atomically(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    if path.suffix == ".parquet":
        df.to_parquet(tmp, index=False)
    else:
        df.to_csv(tmp, index=False, date_format="%Y-%m-%dT%H:%M:%S%z")
    tmp.replace(path)
