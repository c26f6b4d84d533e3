from rationales.records import Check, Problem, Rationale, Sampling, Score, Step


def test_problem_id_is_content_hash():
    a = Problem.make("What is 2+2?", 4, source="x")
    b = Problem.make("What is 2+2?", "4", source="x")
    c = Problem.make("What is 2+3?", 5, source="x")
    assert a.id == b.id and a.id != c.id
    assert len(a.id) == 16


def test_rationale_id_depends_on_every_part():
    s = Sampling(temperature=0.7, seed=1)
    base = Rationale.make_id("p", "prompt", "m", s, 0)
    assert base == Rationale.make_id("p", "prompt", "m", Sampling(temperature=0.7, seed=1), 0)
    assert base != Rationale.make_id("p", "prompt", "m", s, 1)
    assert base != Rationale.make_id("p", "prompt2", "m", s, 0)
    assert base != Rationale.make_id("p", "prompt", "m2", s, 0)
    assert base != Rationale.make_id("p", "prompt", "m", Sampling(temperature=0.8, seed=1), 0)
    assert base != Rationale.make_id("q", "prompt", "m", s, 0)


def test_roundtrip_json_keeps_steps_checks_scores():
    r = Rationale(id="r", problem_id="p", prompt_id="q", model="m", text="1+1=2\nThe answer is 2.",
                  steps=[Step(index=0, text="1+1=2", span=(0, 5),
                              checks=[Check(kind="tool", verdict=1, detail={"expression": "1+1"})])],
                  answer="2", scores=[Score(kind="vote_share", value=0.5)])
    back = Rationale.model_validate_json(r.model_dump_json())
    assert back == r
    assert back.steps[0].verdict("tool") == 1 and back.steps[0].verdict("mc") is None
    back.set_score(Score(kind="vote_share", value=0.75))
    assert back.score("vote_share") == 0.75 and len(back.scores) == 1
