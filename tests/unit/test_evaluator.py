"""The Chapter V evaluator over the shipped rule pack: one test per procedure step and date edge."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest

from monitor.policy.evaluator import VendorRef, evaluate, severity
from monitor.policy.register import VendorDef
from monitor.policy.rulepack import RulePack, load_pack
from monitor.records import Destination, Outcome, Severity, System, Verdict
from monitor.settings import default_rules_dir

D = dt.date
CUSTOMER = System("crm", ("customer-personal",))
HR = System("payroll", ("hr",))
LOCATION = re.compile(r"rules/[\w/.-]+\.yaml:\d+")


@pytest.fixture(scope="module")
def pack() -> RulePack:
    return load_pack(default_rules_dir())


def dest(country: str | None = None, *, internal: bool = False, registered: str | None = None) -> Destination:
    return Destination(
        host="api.recipient.example",
        ip="198.51.100.7",
        located_country=country,
        registered_country=registered,
        internal=internal,
    )


def vendor(*mechanisms: dict[str, Any], same_entity: bool = False, name: str = "Recipient Ltd") -> VendorRef:
    v = VendorDef.model_validate(
        {"name": name, "domains": ["recipient.example"], "same_entity": same_entity, "mechanisms": list(mechanisms)}
    )
    return VendorRef(v, "xborder.yaml:40", tuple(f"xborder.yaml:{43 + i}" for i in range(len(mechanisms))))


def judge(
    pack: RulePack, system: System, destination: Destination, day: dt.date, ref: VendorRef | None = None
) -> Verdict:
    """Evaluate, and check what holds for every verdict."""
    v = evaluate(pack, system, destination, day, ref)
    assert v.pack_hash == pack.hash
    assert LOCATION.fullmatch(v.rule_location), v.rule_location
    assert v.steps, "a verdict always shows its reasoning"
    assert v.steps[-1].result == "match"
    assert [s.result for s in v.steps[:-1]] == ["pass"] * (len(v.steps) - 1)
    # the steps are the procedure, in order, up to the deciding one
    assert [s.rule_id for s in v.steps] == [p.id for p in pack.procedure[: len(v.steps)]]
    assert all(s.location == pack.locations[s.rule_id] for s in v.steps)
    assert v.vendor == (ref.vendor.name if ref else None)
    # pure: the same inputs give the same verdict
    assert evaluate(pack, system, destination, day, ref) == v
    return v


def decided_by(v: Verdict) -> str:
    return v.steps[-1].rule_id


# --------------------------------------------------------------------------- before any country


@pytest.mark.parametrize("cats", [("none",), ("public", "anonymous"), ("non-personal",)])
def test_no_personal_data_is_out_of_scope(pack: RulePack, cats: tuple[str, ...]) -> None:
    v = judge(pack, System("build", cats), dest("CN"), D(2024, 1, 1))
    assert (v.outcome, v.article, v.rule_id) == (Outcome.OUT_OF_SCOPE, None, "gdpr.scope.no-personal-data")
    assert v.severity == Severity.INFO
    assert len(v.steps) == 1


def test_one_personal_category_brings_it_into_scope(pack: RulePack) -> None:
    v = judge(pack, System("mixed", ("none", "customer-personal")), dest("CN"), D(2024, 1, 1))
    assert v.outcome == Outcome.UNAUTHORIZED


def test_internal_destination(pack: RulePack) -> None:
    v = judge(pack, CUSTOMER, dest(internal=True), D(2024, 1, 1))
    assert (v.outcome, v.article, v.rule_id) == (Outcome.PERMITTED, None, "gdpr.no-transfer.internal")
    assert v.rule_location == pack.locations["gdpr.no-transfer.internal"]


def test_same_legal_entity(pack: RulePack) -> None:
    ref = vendor(same_entity=True, name="Our Shop Inc.")
    v = judge(pack, CUSTOMER, dest("CN"), D(2024, 1, 1), ref)
    assert (v.outcome, v.article, v.rule_id) == (Outcome.PERMITTED, None, "gdpr.no-transfer.same-entity")
    assert v.vendor == "Our Shop Inc."
    assert "xborder.yaml:40" in v.basis


def test_unknown_country_needs_review(pack: RulePack) -> None:
    v = judge(pack, CUSTOMER, dest(None), D(2024, 1, 1))
    assert (v.outcome, v.article, v.rule_id) == (Outcome.REVIEW, None, "gdpr.unknown-country")
    assert v.severity == Severity.MEDIUM


# --------------------------------------------------------------------------- EEA and territories


@pytest.mark.parametrize("country", ["DE", "NO", "IS", "AX"])
def test_eea_recipient_is_no_transfer(pack: RulePack, country: str) -> None:
    v = judge(pack, CUSTOMER, dest(country), D(2024, 1, 1))
    assert (v.outcome, v.article, v.rule_id) == (Outcome.PERMITTED, None, "gdpr.no-transfer.eea")
    assert country in v.basis


def test_registered_country_used_when_location_unknown(pack: RulePack) -> None:
    v = judge(pack, CUSTOMER, dest(None, registered="DE"), D(2024, 1, 1))
    assert v.rule_id == "gdpr.no-transfer.eea"


def test_location_wins_over_registration(pack: RulePack) -> None:
    v = judge(pack, CUSTOMER, dest("CN", registered="DE"), D(2024, 1, 1))
    assert v.outcome == Outcome.UNAUTHORIZED


def test_greenland_is_not_eea(pack: RulePack) -> None:
    v = judge(pack, CUSTOMER, dest("GL"), D(2024, 1, 1))
    assert v.rule_id != "gdpr.no-transfer.eea"
    assert (v.outcome, v.article) == (Outcome.UNAUTHORIZED, "44")


def test_svalbard_needs_review(pack: RulePack) -> None:
    v = judge(pack, CUSTOMER, dest("SJ"), D(2024, 1, 1))
    assert (v.outcome, v.rule_id) == (Outcome.REVIEW, "gdpr.territory-review")


# --------------------------------------------------------------------------- adequacy


@pytest.mark.parametrize(("country", "rule_id"), [("CH", "adequacy.CH"), ("GB", "adequacy.GB.2021")])
def test_full_adequacy(pack: RulePack, country: str, rule_id: str) -> None:
    v = judge(pack, CUSTOMER, dest(country), D(2024, 1, 1))
    assert (v.outcome, v.article, v.rule_id) == (Outcome.PERMITTED, "45", rule_id)
    assert v.rule_location == pack.locations[rule_id]
    assert decided_by(v) == "gdpr.art45.adequacy"
    assert v.severity == Severity.INFO


def test_uk_the_day_before_the_decision(pack: RulePack) -> None:
    # not adequacy yet, but the TCA bridge (after the transition period) meant no third-country transfer
    v = judge(pack, CUSTOMER, dest("GB"), D(2021, 6, 27))
    assert not v.rule_id.startswith("adequacy.")
    assert (v.outcome, v.article, v.rule_id) == (Outcome.PERMITTED, None, "gdpr.no-transfer.eea")
    assert "until 2021-06-27" in v.basis


def test_uk_the_day_of_the_decision(pack: RulePack) -> None:
    v = judge(pack, CUSTOMER, dest("GB"), D(2021, 6, 28))
    assert (v.outcome, v.article, v.rule_id) == (Outcome.PERMITTED, "45", "adequacy.GB.2021")
    assert "2021/1772" in v.basis


def test_uk_renewal(pack: RulePack) -> None:
    v = judge(pack, CUSTOMER, dest("GB"), D(2026, 6, 1))
    assert v.rule_id == "adequacy.GB.2025"


def test_japan_without_scope_confirmation_needs_review(pack: RulePack) -> None:
    v = judge(pack, CUSTOMER, dest("JP"), D(2024, 1, 1))
    assert (v.outcome, v.article, v.rule_id) == (Outcome.REVIEW, "45", "gdpr.art45.scope-unconfirmed")
    assert "APPI" in v.basis


def test_japan_confirmation_for_another_country_does_not_count(pack: RulePack) -> None:
    ref = vendor({"type": "adequacy-scope", "country": "CA", "confirmed_on": "2024-01-01"})
    v = judge(pack, CUSTOMER, dest("JP"), D(2024, 1, 1), ref)
    assert v.outcome == Outcome.REVIEW


def test_japan_with_scope_confirmation(pack: RulePack) -> None:
    ref = vendor({"type": "adequacy-scope", "country": "JP", "confirmed_on": "2023-05-01"})
    v = judge(pack, CUSTOMER, dest("JP"), D(2024, 1, 1), ref)
    assert (v.outcome, v.article, v.rule_id) == (Outcome.PERMITTED, "45", "adequacy.JP")
    assert v.rule_location == pack.locations["adequacy.JP"]
    assert "xborder.yaml:43" in v.basis


# --------------------------------------------------------------------------- United States


def dpf(since: str = "2023-07-10", scope: str = "non-hr", framework: str = "eu-us") -> dict[str, Any]:
    return {"type": "dpf", "framework": framework, "certified_since": since, "scope": scope}


def test_dpf_on_the_first_day(pack: RulePack) -> None:
    v = judge(pack, CUSTOMER, dest("US"), D(2023, 7, 10), vendor(dpf()))
    assert (v.outcome, v.article, v.rule_id) == (Outcome.PERMITTED, "45", "adequacy.US.dpf")
    assert v.rule_location == pack.locations["adequacy.US.dpf"]


def test_dpf_the_day_before_the_decision(pack: RulePack) -> None:
    v = judge(pack, CUSTOMER, dest("US"), D(2023, 7, 9), vendor(dpf(since="2023-07-01")))
    assert v.rule_id != "adequacy.US.dpf"
    assert (v.outcome, v.article, v.rule_id) == (Outcome.UNAUTHORIZED, "44", "gdpr.art44.unauthorized")


def test_dpf_before_the_vendor_was_certified(pack: RulePack) -> None:
    v = judge(pack, CUSTOMER, dest("US"), D(2023, 8, 1), vendor(dpf(since="2023-08-02")))
    assert v.outcome == Outcome.UNAUTHORIZED


def test_dpf_non_hr_scope_does_not_cover_hr_data(pack: RulePack) -> None:
    v = judge(pack, HR, dest("US"), D(2024, 1, 1), vendor(dpf(scope="non-hr")))
    assert v.rule_id != "adequacy.US.dpf"
    assert v.outcome == Outcome.UNAUTHORIZED


def test_dpf_hr_scope_does_not_cover_customer_data(pack: RulePack) -> None:
    v = judge(pack, CUSTOMER, dest("US"), D(2024, 1, 1), vendor(dpf(scope="hr")))
    assert v.outcome == Outcome.UNAUTHORIZED


@pytest.mark.parametrize("system", [HR, CUSTOMER, System("both", ("hr", "customer-personal"))])
def test_dpf_scope_both(pack: RulePack, system: System) -> None:
    v = judge(pack, system, dest("US"), D(2024, 1, 1), vendor(dpf(scope="both")))
    assert v.rule_id == "adequacy.US.dpf"


def test_dpf_other_framework_does_not_count(pack: RulePack) -> None:
    v = judge(pack, CUSTOMER, dest("US"), D(2024, 1, 1), vendor(dpf(framework="uk-ext")))
    assert v.outcome == Outcome.UNAUTHORIZED


def test_us_after_privacy_shield_with_nothing(pack: RulePack) -> None:
    v = judge(pack, CUSTOMER, dest("US"), D(2020, 8, 1))
    assert (v.outcome, v.article, v.rule_id) == (Outcome.UNAUTHORIZED, "44", "gdpr.art44.unauthorized")
    assert v.severity == Severity.HIGH


# --------------------------------------------------------------------------- SCC, BCR, derogation


def scc(signed: str, version: str = "2021/914", **extra: str) -> dict[str, Any]:
    return {"type": "scc", "module": 2, "signed": signed, "version": version, **extra}


def test_scc_the_day_before_signing(pack: RulePack) -> None:
    v = judge(pack, CUSTOMER, dest("CN"), D(2024, 2, 29), vendor(scc("2024-03-01")))
    assert v.outcome == Outcome.UNAUTHORIZED


def test_scc_from_the_day_of_signing(pack: RulePack) -> None:
    v = judge(pack, CUSTOMER, dest("CN"), D(2024, 3, 1), vendor(scc("2024-03-01")))
    assert (v.outcome, v.article, v.rule_id) == (Outcome.PERMITTED, "46(2)(c)", "gdpr.art46.2.c.scc")
    assert v.rule_location == pack.locations["gdpr.art46.2.c.scc"]
    assert "module 2" in v.basis and "2024-03-01" in v.basis and "xborder.yaml:43" in v.basis


def test_scc_expired(pack: RulePack) -> None:
    ref = vendor(scc("2022-01-10", expires="2024-12-31"))
    assert judge(pack, CUSTOMER, dest("CN"), D(2024, 12, 31), ref).outcome == Outcome.PERMITTED
    assert judge(pack, CUSTOMER, dest("CN"), D(2025, 1, 1), ref).outcome == Outcome.UNAUTHORIZED


def test_new_scc_signed_before_they_existed(pack: RulePack) -> None:
    v = judge(pack, CUSTOMER, dest("CN"), D(2022, 1, 1), vendor(scc("2021-06-03")))
    assert v.outcome == Outcome.UNAUTHORIZED


def test_old_scc_transition_ends_2022_12_27(pack: RulePack) -> None:
    ref = vendor(scc("2020-01-01", version="2010/87"))
    last = judge(pack, CUSTOMER, dest("CN"), D(2022, 12, 27), ref)
    assert (last.outcome, last.article) == (Outcome.PERMITTED, "46(2)(c)")
    after = judge(pack, CUSTOMER, dest("CN"), D(2022, 12, 28), ref)
    assert (after.outcome, after.article) == (Outcome.UNAUTHORIZED, "44")


@pytest.mark.parametrize("day", [D(2021, 10, 1), D(2021, 12, 1), D(2022, 12, 27)])
def test_old_scc_signed_after_repeal_never_covers(pack: RulePack, day: dt.date) -> None:
    v = judge(pack, CUSTOMER, dest("CN"), day, vendor(scc("2021-10-01", version="2010/87")))
    assert v.outcome == Outcome.UNAUTHORIZED


def test_bcr(pack: RulePack) -> None:
    ref = vendor({"type": "bcr", "approved_on": "2019-05-01", "authority": "BfDI"})
    v = judge(pack, CUSTOMER, dest("CN"), D(2024, 1, 1), ref)
    assert (v.outcome, v.article, v.rule_id) == (Outcome.PERMITTED, "46(2)(b)", "gdpr.art47.bcr")


def test_bcr_not_yet_approved(pack: RulePack) -> None:
    ref = vendor({"type": "bcr", "approved_on": "2024-06-01"})
    assert judge(pack, CUSTOMER, dest("CN"), D(2024, 1, 1), ref).outcome == Outcome.UNAUTHORIZED


def test_derogation(pack: RulePack) -> None:
    ref = vendor({"type": "derogation", "point": "b", "justification": "performance of a contract"})
    v = judge(pack, CUSTOMER, dest("CN"), D(2024, 1, 1), ref)
    assert (v.outcome, v.article, v.rule_id) == (Outcome.PERMITTED, "49(1)(b)", "gdpr.art49.derogation")
    assert "performance of a contract" in v.basis


def test_scc_is_preferred_to_a_derogation(pack: RulePack) -> None:
    ref = vendor({"type": "derogation", "point": "a", "justification": "consent"}, scc("2023-01-01"))
    v = judge(pack, CUSTOMER, dest("CN"), D(2024, 1, 1), ref)
    assert v.article == "46(2)(c)"
    assert "xborder.yaml:44" in v.basis  # the second mechanism's own line


# --------------------------------------------------------------------------- unauthorized and severity


@pytest.mark.parametrize(
    ("cats", "sev"),
    [
        (("payment",), Severity.CRITICAL),
        (("customer-personal", "payment"), Severity.CRITICAL),
        (("customer-personal",), Severity.HIGH),
        (("some-new-category",), Severity.HIGH),  # the table's default
        (("unknown", "some-new-category"), Severity.MEDIUM),
    ],
)
def test_unauthorized_severity_by_category(pack: RulePack, cats: tuple[str, ...], sev: Severity) -> None:
    v = judge(pack, System("s", cats), dest("CN"), D(2024, 1, 1))
    assert (v.outcome, v.article, v.rule_id) == (Outcome.UNAUTHORIZED, "44", "gdpr.art44.unauthorized")
    assert v.severity == sev


def test_severity_table_for_unknown_data(pack: RulePack) -> None:
    assert severity(pack, "unauthorized", ("unknown",)) == Severity.MEDIUM


@pytest.mark.parametrize("cats", [("unknown",), ()])
def test_unattributed_source_needs_review(pack: RulePack, cats: tuple[str, ...]) -> None:
    v = judge(pack, System("unattributed", cats), dest("CN"), D(2024, 1, 1))
    assert (v.outcome, v.rule_id) == (Outcome.REVIEW, "gdpr.review.unattributed-source")
    assert v.severity == Severity.MEDIUM


def test_unattributed_source_to_eea_is_still_permitted(pack: RulePack) -> None:
    v = judge(pack, System("unattributed", ("unknown",)), dest("FR"), D(2024, 1, 1))
    assert v.rule_id == "gdpr.no-transfer.eea"


# --------------------------------------------------------------------------- purity


def test_no_state_leaks_between_evaluations(pack: RulePack) -> None:
    ref = vendor(scc("2024-03-01"))
    first = evaluate(pack, CUSTOMER, dest("CN"), D(2024, 3, 1), ref)
    other = evaluate(pack, CUSTOMER, dest("CH"), D(2024, 3, 1), None)
    again = evaluate(pack, CUSTOMER, dest("CN"), D(2024, 3, 1), ref)
    assert first == again
    assert "SCC" not in other.basis
    assert first != other
