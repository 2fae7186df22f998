"""Consent mode and personal data in the export.

Consent mode: every row has `privacy_info` ("[GA4] BigQuery Export schema"); with advanced consent mode a
visitor who denies analytics storage is still measured by cookieless pings, which carry no
`user_pseudo_id` and no `ga_session_id` parameter (the identifiers live in the cookies they refused).
Personal data: sites put emails, tokens and order ids into URLs, which GA4 exports verbatim in the
`page_location` / `page_referrer` parameters; some sites set the login email as `user_id`."""

from __future__ import annotations

import re

import duckdb
import pytest

from recsys_platform.standins.ga4_simulator.simulation import SimulationConfig, simulate
from recsys_platform_tests.ga4_simulator.conftest import PROPERTY_ID, SMALL

DATASET = f"analytics_{PROPERTY_ID}"
ALL_DAYS = (f"(SELECT * FROM {DATASET}.events_20260301 UNION ALL SELECT * FROM {DATASET}.events_20260302 "
            f"UNION ALL SELECT * FROM {DATASET}.events_20260303)")


def param(name, kind="string_value"):
    return f"(SELECT p.value.{kind} FROM UNNEST(event_params) AS t(p) WHERE p.key = '{name}')"


def test_privacy_info_is_on_every_row_and_about_three_percent_is_denied(export):
    total, missing, denied, values = export.execute(
        f"SELECT count(*), count(*) FILTER (WHERE privacy_info IS NULL OR privacy_info.analytics_storage IS NULL), "
        f"count(*) FILTER (WHERE privacy_info.analytics_storage = 'No'), "
        f"list(DISTINCT privacy_info.analytics_storage || '/' || privacy_info.ads_storage || '/' || "
        f"privacy_info.uses_transient_token) FROM {ALL_DAYS}"
    ).fetchone()
    assert missing == 0
    # Consent is a session's (its ~10 events share it): ~3% of sessions, so 1.5%..5% of rows over 3 days.
    assert 0.015 < denied / total < 0.05, denied / total
    # Denied analytics storage comes with denied ads storage; consenting sessions mostly grant ads too.
    assert sorted(values) == ["No/No/No", "Yes/No/No", "Yes/Yes/No"]


def test_cookieless_pings_have_no_pseudo_id_user_id_or_session(export):
    rows = export.execute(
        f"SELECT count(*), count(user_pseudo_id), count(user_id), count({param('ga_session_id', 'int_value')}), "
        f"count({param('ga_session_number', 'int_value')}), count({param('page_location')}) "
        f"FROM {ALL_DAYS} WHERE privacy_info.analytics_storage = 'No'"
    ).fetchone()
    assert rows[0] > 0 and rows[1:5] == (0, 0, 0, 0)
    assert rows[5] == rows[0]  # the page is still measured
    identified = export.execute(
        f"SELECT count(*) FILTER (WHERE user_pseudo_id IS NULL OR {param('ga_session_id', 'int_value')} IS NULL) "
        f"FROM {ALL_DAYS} WHERE privacy_info.analytics_storage = 'Yes'"
    ).fetchone()[0]
    assert identified == 0


def test_consent_share_zero_means_no_cookieless_pings(tmp_path):
    summary = simulate(SimulationConfig(home=tmp_path, days=1, events_per_day=800, seed=7, consent_denied_share=0,
                                        **SMALL))
    with duckdb.connect(str(summary.export_db), read_only=True) as connection:
        assert connection.execute(
            f"SELECT count(*) FROM {DATASET}.events_20260301 WHERE user_pseudo_id IS NULL "
            "OR privacy_info.analytics_storage <> 'Yes'").fetchone()[0] == 0


def urls(export, key="page_location"):
    return [r[0] for r in export.execute(f"SELECT {param(key)} FROM {ALL_DAYS} WHERE platform = 'WEB'").fetchall()]


def test_page_urls_carry_emails_tokens_and_order_ids_in_a_small_share(export, product):
    locations = urls(export)
    personal = [u for u in locations if re.search(r"[?&](email|token|reset_token|order_id)=", u)]
    assert 0.004 < len(personal) / len(locations) < 0.02, len(personal) / len(locations)
    emails = [u for u in personal if "email=" in u]
    # Both the raw and the URL-encoded form of the address.
    assert any(re.search(r"email=[a-z.]+\d+@example\.(com|net|org)", u) for u in emails)
    assert any(re.search(r"email=[a-z.]+\d+%40example\.(com|net|org)", u) for u in emails)
    assert any(re.search(r"[?&](reset_)?token=[0-9a-f]{32}", u) for u in personal)
    # An order id in a URL is a real order of the shop (the session's own).
    order_ids = {m.group(1) for u in personal for m in [re.search(r"order_id=([^&]+)", u)] if m}
    known = {r[0] for r in product.execute("SELECT order_id FROM product_db.product_db.orders").fetchall()}
    assert order_ids and order_ids <= known


def test_ordinary_campaign_parameters_stay(export):
    landings = [u for u in urls(export) if "?" in u]
    assert any("utm_source=newsletter&utm_medium=email&utm_campaign=weekly_digest" in u for u in landings)
    assert any(re.search(r"[?&]gclid=\w+", u) for u in landings)


def test_referrers_repeat_the_previous_page_with_its_personal_data(export):
    referrers = [u for u in urls(export, "page_referrer") if u]
    assert any(u.startswith("https://www.google.com/") for u in referrers)  # external, on landings
    assert any(re.search(r"shop\.example\.com/products/.+[?&](email|token|reset_token)=", u) for u in referrers)
    # Every web event of a consenting session but the direct/email landings has a referrer.
    assert len(referrers) > 0.8 * len(urls(export))


def test_login_email_as_user_id(tmp_path):
    summary = simulate(SimulationConfig(home=tmp_path, days=1, events_per_day=3_000, seed=5,
                                        email_user_id_share=0.05, **SMALL))
    with duckdb.connect(str(summary.export_db), read_only=True) as export:
        ga4_ids = {r[0] for r in export.execute(
            f"SELECT DISTINCT user_id FROM {DATASET}.events_20260301 WHERE user_id IS NOT NULL").fetchall()}
    with duckdb.connect(str(summary.product_db), read_only=True) as product:
        db_ids = {r[0] for r in product.execute("SELECT user_id FROM product_db.product_db.users").fetchall()}
    emails = {i for i in ga4_ids if "@" in i}
    assert emails and all(re.fullmatch(r"[a-z]+\.[a-z]+\d+@example\.(com|net|org)", e) for e in emails)
    assert not emails & db_ids  # the product DB keeps its own ids
    assert ga4_ids - emails <= db_ids
    assert len(emails) < 0.2 * len(ga4_ids)


@pytest.fixture(scope="module")
def with_and_without_realities(tmp_path_factory):
    runs = {}
    for name, shares in (("off", dict(consent_denied_share=0, pii_url_share=0, email_user_id_share=0)),
                         ("on", dict(consent_denied_share=0.2, pii_url_share=0.2, email_user_id_share=0.2))):
        home = tmp_path_factory.mktemp(name)
        runs[name] = simulate(SimulationConfig(home=home, days=1, events_per_day=1_500, seed=13, **shares, **SMALL))
    return runs


def test_realities_overlay_the_same_behaviour(with_and_without_realities):
    # The realities' draws come from their own streams: turning them up changes no event, item or order.
    def behaviour(summary, query):
        with duckdb.connect(str(summary.export_db), read_only=True) as connection:
            return connection.execute(query).fetchall()

    events = (f"SELECT event_timestamp, event_name, event_bundle_sequence_id, to_json(items) FROM "
              f"{DATASET}.events_20260301 ORDER BY ALL")
    off, on = (behaviour(with_and_without_realities[k], events) for k in ("off", "on"))
    assert off == on
    assert [d.orders for d in with_and_without_realities["off"].days] == [
        d.orders for d in with_and_without_realities["on"].days]
