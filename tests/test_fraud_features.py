import numpy as np
import pandas as pd

from orchestration_pipelines.fraud.features import FEATURE_COLUMNS, compute_features


def _tx(rows: list[tuple]) -> pd.DataFrame:
    """rows: (id, account, minute offset, amount, country, device, mcc, channel)"""
    base = pd.Timestamp("2026-11-01T10:00:00Z")
    return pd.DataFrame(
        [
            {
                "transaction_id": tid,
                "account_id": acc,
                "card_id": f"C-{acc}",
                "timestamp": base + pd.Timedelta(minutes=minute),
                "amount": amount,
                "currency": "EUR",
                "merchant_id": f"M{mcc}",
                "merchant_category": mcc,
                "country": country,
                "channel": channel,
                "device_id": device,
            }
            for tid, acc, minute, amount, country, device, mcc, channel in rows
        ]
    )


def test_features_look_only_backwards_and_keep_input_order():
    tx = _tx(
        [
            ("t3", "A", 30, 20.0, "DE", "d1", "5411", "card_present"),
            ("t1", "A", 0, 20.0, "DE", "d1", "5411", "card_present"),
            ("t2", "A", 5, 20.0, "DE", "d1", "5411", "card_present"),
            ("t4", "A", 31, 400.0, "BR", "d9", "5944", "ecommerce"),
            ("u1", "B", 0, 10.0, "FR", "e1", "5812", "contactless"),
        ]
    )
    f = compute_features(tx).set_index("transaction_id")
    assert list(f.index) == ["t3", "t1", "t2", "t4", "u1"]
    assert f.loc["t1", "account_tx_count_prior"] == 0
    assert f.loc["t4", "account_tx_count_prior"] == 3
    assert f.loc["t4", "account_tx_count_1h"] == 4
    assert f.loc["t2", "card_tx_count_10m"] == 2
    assert f.loc["t3", "card_tx_count_10m"] == 1  # t1 and t2 are more than 10 minutes earlier
    assert f.loc["t4", "amount_ratio_to_typical"] == 20.0
    assert f.loc["t4", "is_new_device"] == 1 and f.loc["t3", "is_new_device"] == 0
    assert f.loc["t4", "is_new_merchant_category"] == 1
    # DE -> BR (about 9,500 km) in one minute is far beyond any aircraft.
    assert f.loc["t4", "travel_speed_kmh"] > 100_000
    assert f.loc["t2", "travel_speed_kmh"] == 0
    assert f.loc["u1", "hours_since_prev"] == 24 * 30  # no earlier transaction
    assert f.loc["t1", "hour_of_day"] == 10
    assert set(FEATURE_COLUMNS) <= set(f.columns)


def test_history_gives_context_but_is_not_returned():
    history = _tx([("h1", "A", -600, 25.0, "DE", "d1", "5411", "card_present")])
    batch = _tx([("t1", "A", 0, 25.0, "DE", "d1", "5411", "card_present")])
    with_history = compute_features(batch, history)
    alone = compute_features(batch)
    assert list(with_history["transaction_id"]) == ["t1"]
    assert with_history.loc[0, "account_tx_count_prior"] == 1 and alone.loc[0, "account_tx_count_prior"] == 0
    assert with_history.loc[0, "is_new_device"] == 0 and alone.loc[0, "is_new_device"] == 1
    assert with_history.loc[0, "hours_since_prev"] == 10


def test_timestamp_resolution_does_not_change_features(small_world):
    batch = small_world.batches[0].drop(columns=["is_fraud", "fraud_pattern"])
    micro = batch.assign(timestamp=batch["timestamp"].dt.as_unit("us"))
    a, b = compute_features(batch), compute_features(micro)
    np.testing.assert_allclose(a[FEATURE_COLUMNS].to_numpy(float), b[FEATURE_COLUMNS].to_numpy(float))


def test_fraud_patterns_stand_out_in_their_signature_features(small_world):
    history = small_world.history
    f = compute_features(history)
    pattern = history["fraud_pattern"].to_numpy()
    legit = f[pattern == ""]
    assert (
        f[pattern == "card_testing"]["card_tx_count_10m"].median()
        >= 5
        > legit["card_tx_count_10m"].quantile(0.99)
    )
    assert f[pattern == "impossible_travel"]["travel_speed_kmh"].median() > 1000
    assert f[pattern == "new_category_high_amount"]["is_new_merchant_category"].mean() > 0.8
    # a takeover session uses one new device for 2-4 transactions: only its first meets it anew
    assert (
        f[pattern == "account_takeover"]["is_new_device"].mean() >= 0.25 > 3 * legit["is_new_device"].mean()
    )
    assert 0.001 < history["is_fraud"].mean() < 0.01


def test_history_from_the_warehouse_mixes_with_a_batch_from_a_file(small_world):
    """DuckDB hands back microseconds in its own UTC zone; a file gives nanoseconds in pandas' UTC."""
    import duckdb

    batch = small_world.batches[0].drop(columns=["is_fraud", "fraud_pattern"])
    with duckdb.connect() as con:
        con.register("history_frame", small_world.history)
        warehouse_history = con.execute("SELECT * FROM history_frame").df()
    assert str(warehouse_history["timestamp"].dtype) != str(batch["timestamp"].dtype)
    mixed = compute_features(batch, warehouse_history)
    same = compute_features(batch, small_world.history)
    np.testing.assert_allclose(mixed[FEATURE_COLUMNS].to_numpy(float), same[FEATURE_COLUMNS].to_numpy(float))
    assert str(mixed["timestamp"].dtype) == "datetime64[ns, UTC]"
