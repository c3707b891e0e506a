"""The reference twin's calibration (analysis.analyses.calibration): its moves keep every published
count, its fast refits are the library's models, and what it calls unreachable is what the counts
alone decide. The calibrated result itself is checked in test_reference_twin.py."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.analyses import calibration as C
from analysis.data import synthetic
from analysis.paths import resolve

PERIOD, ELIGIBILITY, _ = synthetic._study_layout(synthetic.REFERENCE.study)
TARGETS = synthetic.read_targets(resolve(synthetic.REFERENCE.published))


@pytest.fixture()
def draft() -> synthetic.Draft:
    drafts: list = []
    synthetic.generate(synthetic.REFERENCE.parameters, TARGETS, PERIOD, ELIGIBILITY, C._capture(drafts))
    return drafts[0]


def _counts(d: synthetic.Draft) -> list:
    return [(int(d.error_admission[d.group == g].sum()), int(d.outcome[d.group == g].sum()),
             int((d.error_discharge & d.outcome)[d.group == g].sum()), int((d.age[d.group == g] >= 65).sum()))
            for g in (0, 1)]


def test_moves_keep_every_count_and_stay_within_their_budgets(draft):
    before = _counts(draft)
    drawn = {c: getattr(draft, c).copy() for c in C.BUDGET}
    moves = C._Moves(draft, np.random.default_rng(1))
    applied = 0
    for _ in range(3000):
        move = moves.propose()
        if move is not None:
            move[0]()
            applied += 1
    assert applied > 1000
    assert _counts(draft) == before == [(49, 101, 66, 60), (10, 108, 15, 48)]
    assert not (draft.error_discharge & ~draft.outcome).any()  # no error without a recorded outcome
    for name, budget in C.BUDGET.items():
        # exchanges trade values between patients, so the cohort's values stay within budget of the drawn ones
        assert np.abs(np.sort(getattr(draft, name)) - np.sort(drawn[name])).max() <= budget * 3, name
        assert (moves.nudged[name] <= budget).all() and (moves.nudged[name] >= -budget).all()
    assert draft.charlson.min() >= 0 and draft.medicines.min() >= ELIGIBILITY.min_medicines
    assert draft.stay.min() >= 1 and draft.age.min() >= ELIGIBILITY.min_age


def test_an_undone_move_leaves_the_draft_as_it_was(draft):
    moves = C._Moves(draft, np.random.default_rng(2))
    for _ in range(300):
        move = moves.propose()
        if move is None:
            continue
        state = {c: getattr(draft, c).copy() for c in ("age", "charlson", "medicines", "stay", "error_admission",
                                                        "outcome", "error_discharge")}
        move[0]()
        move[1]()
        for name, values in state.items():
            np.testing.assert_array_equal(getattr(draft, name), values, err_msg=f"{move[3]}: {name}")


def test_the_fast_refits_are_the_library_models(draft):
    """Newton on the fixed design gives statsmodels' fit: the Hosmer-Lemeshow p and R² as the library
    computes them; the mixed odds ratio through the measured offset is the library's at the draft."""
    library = C.library_fits(draft)
    fast = C._Fast(draft)
    fast.calibrate_offsets(library)
    for key in C.OUTCOMES:
        values = fast.fit(key)
        assert values["hosmer_lemeshow_p"] == pytest.approx(library[key]["hosmer_lemeshow_p"], abs=1e-9), key
        assert values["nagelkerke_r2"] == pytest.approx(library[key]["nagelkerke_r2"], abs=1e-9), key
        # within 1e-5 (the reported SE and the interval's differ in the last digits): a thousandth of
        # the printed precision the calibration works to (0.005 on 0.07, 7%)
        for q in ("or", "or_low", "or_high"):
            assert values[q] == pytest.approx(library[key][q], rel=1e-5), (key, q)


def test_the_printed_targets_carry_their_tolerances():
    targets = C.published_targets()
    admission = targets["error_at_admission"]
    assert (admission["or"].value, admission["or"].tolerance) == (0.14, 0.005)
    assert (admission["hosmer_lemeshow_p"].value, admission["hosmer_lemeshow_p"].tolerance) == (0.737, 0.0005)


def test_unreachable_is_what_the_published_counts_alone_give():
    found = C.unreachable()
    assert set(found) == {"or_unadjusted:error_at_admission", "nnt_any_error_at_discharge"}
    odds = found["or_unadjusted:error_at_admission"]
    # Woolf from 49/121 and 10/112: (10 x 72) / (102 x 49) = 0.1441, printed 0.14 against the published 0.15
    assert odds["every_dataset_with_the_published_counts_gives"][0] == pytest.approx(10 * 72 / (102 * 49))
    assert odds["published"][0] == 0.15
    assert odds["reason"].startswith("a function of the published counts alone.")
