"""The generate stage: caching by content hash, per-sample seeds, immediate commits."""

from rationales.backends.fake import FakeBackend
from rationales.generate import cot_specs, generate, sample_seed
from rationales.store import Store
from rationales.tasks import load_task


def script(prompt, seed, index):
    return f"Step 1: think ({seed}).\nThe answer is {15 if index % 2 == 0 else 14}."


def test_same_request_twice_generates_nothing_new(tmp_path):
    problems = load_task("demo", limit=3)
    store = Store(tmp_path / "s.sqlite")
    be = FakeBackend(script=script)
    out = generate(cot_specs(problems, n=4), be, store)
    assert be.samples_generated == 12 and store.count() == 12
    assert [len(x) for x in out] == [4, 4, 4]
    calls = be.calls
    again = generate(cot_specs(problems, n=4), be, store)
    assert be.samples_generated == 12 and be.calls == calls  # nothing new, no backend call
    assert [[r.id for r in x] for x in again] == [[r.id for r in x] for x in out]
    # more samples: only the 2 extra per problem are generated
    generate(cot_specs(problems, n=6), be, store)
    assert be.samples_generated == 18


def test_missing_samples_keep_their_own_index(tmp_path):
    """Asked for samples 1..4 of a spec whose sample 0 is stored, the backend is told their sample
    indices (a fake script keyed on the index gives sample 1 what it would have given it in one
    call of 5), not 0..3."""
    problems = load_task("demo", limit=1)
    store = Store(tmp_path / "s.sqlite")
    generate(cot_specs(problems, n=1), FakeBackend(script=script), store)
    be = FakeBackend(script=script)
    grown = generate(cot_specs(problems, n=5), be, store)[0]
    whole = generate(cot_specs(problems, n=5), FakeBackend(script=script), Store(tmp_path / "t.sqlite"))[0]
    assert be.samples_generated == 4
    assert [r.answer for r in grown] == [r.answer for r in whole] == ["15", "14", "15", "14", "15"]


def test_seeds_are_explicit_distinct_and_stable(tmp_path):
    problems = load_task("demo", limit=1)
    store = Store(tmp_path / "s.sqlite")
    out = generate(cot_specs(problems, n=5, seed=7), FakeBackend(script=script), store)[0]
    seeds = [r.sampling.seed for r in out]
    assert len(set(seeds)) == 5
    assert seeds[0] == sample_seed(7, problems[0].id, out[0].prompt_id, 0)
    other = generate(cot_specs(problems, n=5, seed=8), FakeBackend(script=script), store)[0]
    assert {r.id for r in other}.isdisjoint({r.id for r in out})  # different settings do not clobber
    assert store.count() == 10


def test_greedy_is_one_sample_at_temperature_zero(tmp_path):
    problems = load_task("demo", limit=2)
    store = Store(tmp_path / "s.sqlite")
    out = generate(cot_specs(problems, n=8, temperature=0.0), FakeBackend(script=script), store)
    assert [len(x) for x in out] == [1, 1]
    assert out[0][0].sampling.temperature == 0.0


def test_rationale_is_segmented_checked_and_classified(tmp_path):
    problems = load_task("demo", limit=1)  # gold 15
    store = Store(tmp_path / "s.sqlite")
    be = FakeBackend(script=["Step 1: 12 - 5 = 7\nStep 2: 7 + 8 = 15\nThe answer is 15.", "no idea", "\x00\ufffd garbage"])
    out = generate(cot_specs(problems, n=3), be, store)[0]
    assert out[0].correct is True and out[0].answer == "15" and len(out[0].steps) == 2
    assert out[1].outcome == "no_answer" and out[1].correct is False and out[1].answer is None
    assert out[2].outcome == "no_answer"


def test_each_sample_committed_before_the_next(tmp_path):
    problems = load_task("demo", limit=2)
    path = tmp_path / "s.sqlite"
    store = Store(path)
    seen = []

    def spy(prompt, seed, index):
        # what another process sees in the store while this sample is being produced
        with Store(path) as other:
            seen.append(other.count())
        return "The answer is 15."

    generate(cot_specs(problems, n=3), FakeBackend(script=spy), store)
    assert seen == [0, 1, 2, 3, 4, 5]


class SizeRecordingFake(FakeBackend):
    """The fake backend, remembering how many samples each ``generate`` call carried."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.call_sizes = []

    def generate(self, requests, on_sample=None):
        self.call_sizes.append(sum(r.n for r in requests))
        return super().generate(requests, on_sample=on_sample)


def test_one_sample_specs_fill_each_backend_call(tmp_path):
    """A backend call carries at least SAMPLES_PER_CALL samples (and 8 requests): one-sample specs
    (tree proposals, rollouts) no longer go 8 at a time; 8-sample specs keep 8 requests a call;
    a backend that decodes more at once gets twice that."""
    from dataclasses import replace

    from rationales.generate import SAMPLES_PER_CALL

    problem = load_task("demo", limit=1)
    base = cot_specs(problem, n=1)[0]
    ones = [replace(base, seed=k) for k in range(100)]
    be = SizeRecordingFake(script=script)
    out = generate(ones, be, Store(tmp_path / "a.sqlite"))
    assert be.call_sizes == [SAMPLES_PER_CALL, 100 - SAMPLES_PER_CALL] and len(out) == 100
    eights = [replace(base, seed=k, n=8) for k in range(16)]
    be = SizeRecordingFake(script=script)
    generate(eights, be, Store(tmp_path / "b.sqlite"))
    assert be.call_sizes == [64, 64]
    be = SizeRecordingFake(script=script)
    be.samples_in_flight = 48
    generate(ones, be, Store(tmp_path / "c.sqlite"))
    assert be.call_sizes == [96, 4]
