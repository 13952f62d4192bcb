"""bench's speed and memory gates: each can pass and can fail, decided from ratios within one run (no absolute
times), with exit codes, JSON and JUnit; the statistics on synthetic rounds with known answers."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from swin_deploy import machine
from swin_deploy.bench_gates import Baseline, Judge, SpeedGates
from swin_deploy.enums import Verdict
from swin_deploy.errors import UserError
from swin_deploy.latency import at_least, at_most, median_ci, slowdown_ci, speedup_ci
from swin_deploy.parsing import parse_fraction


def rounds(median: float, n: int = 40, noise: float = 0.05, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return median * np.exp(rng.normal(0, noise, n))


def test_paired_rounds_find_known_speedups_through_drift_and_bursts():
    drift = np.linspace(1.0, 3.0, 40)  # the machine gets 3x slower during the run, for both alike
    ref, cand = rounds(10, seed=1) * drift, rounds(5, seed=2) * drift
    iv = speedup_ci(ref, cand)
    assert iv.low < 2.0 < iv.high and iv.high - iv.low < 0.3
    assert at_least(iv, 1.5) == Verdict.PASS and at_least(iv, 3.0) == Verdict.FAIL
    assert at_least(speedup_ci(rounds(10, seed=3), rounds(10, seed=4)), 1.0) == Verdict.INCONCLUSIVE
    p50 = median_ci(ref)
    assert p50.low <= p50.estimate <= p50.high
    # unpaired, the drift would swamp the ratio: the paired interval is the narrower by far
    unpaired = np.percentile(np.median(ref[np.random.default_rng(0).integers(0, 40, (2000, 40))], axis=1)
                             / np.median(cand[np.random.default_rng(1).integers(0, 40, (2000, 40))], axis=1), [2.5, 97.5])
    assert unpaired[1] - unpaired[0] > 3 * (iv.high - iv.low)
    # a burst of load that hits the candidate in 40% of the rounds, not the reference: the median of per-round ratios
    # holds where the ratio of the medians would not
    burst = np.where(np.arange(40) % 5 < 2, 3.0, 1.0)
    hit = speedup_ci(rounds(10, seed=1), rounds(10, seed=1) * burst)
    assert 0.9 < hit.estimate <= 1.0 + 1e-9


def test_runners_taking_turns_each_start_after_an_untimed_pause_and_one_alone_runs_back_to_back(monkeypatch):
    """A runtime's threads spin for a while after its run; the next runner must not pay for it (untimed pauses)."""
    from swin_deploy import bench, defaults
    from swin_deploy.backends.base import Runner

    events = []

    class Logged(Runner):
        def __init__(self, name):
            super().__init__()
            self.name = name

        def _activate(self):
            pass

        def _deactivate(self):
            pass

        def _infer(self, x):
            events.append(self.name)
            return {"logits": x}

    monkeypatch.setattr(bench.time, "sleep", lambda s: events.append(s))
    x = np.zeros((1, 3, 4, 4), np.float32)
    a, b = Logged("a"), Logged("b")
    a.activate(), b.activate()
    bench.time_round_robin({"a": (a, x), "b": (b, x)}, warmup=1, iterations=2)
    pause = defaults.BENCH_SETTLE_S
    assert pause >= 0.01
    assert events == ["a", "b", "a", pause, "b", pause, "a", pause, "b", pause]
    events.clear()
    bench.time_round_robin({"a": (a, x)}, warmup=0, iterations=2)
    assert events == ["a", "a"]


def test_fastest_runner_per_batch_is_named_only_when_its_lead_is_outside_the_noise():
    from swin_deploy.bench import BenchReport, BenchStats

    def stats(label: str, batch: int, ms: np.ndarray) -> BenchStats:
        return BenchStats(label, "onnxruntime-cpu", batch, len(ms), float(np.median(ms)), 0.0, 0.0, 0.0, 0.0,
                          (0.0, 0.0), list(ms))

    drift = np.linspace(1.0, 2.0, 40)
    report = BenchReport([stats("slow", 8, rounds(10, seed=1) * drift), stats("fast", 8, rounds(6, seed=2) * drift),
                          stats("slowest", 8, rounds(30, seed=3)), stats("twin a", 1, rounds(10, seed=4)),
                          stats("twin b", 1, rounds(10, seed=5)), stats("alone", 2, rounds(10, seed=6))], {}, 2)
    (tied, decided) = report.fastest()  # batch 2 has one runner: nothing to rank
    assert (decided.batch_size, decided.label, decided.next_label) == (8, "fast", "slow") and decided.decided
    assert decided.lead.low < 10 / 6 < decided.lead.high
    assert tied.batch_size == 1 and not tied.decided and tied.lead.low < 1.0 < tied.lead.high
    assert report.as_dict()["fastest"][1]["decided"] is True


def test_slowdown_is_normalised_by_the_reference_of_each_run():
    # the baseline ran on a machine twice as fast: candidate and reference both took half the time
    then, then_ref = rounds(5, seed=1), rounds(10, seed=2)
    same = slowdown_ci(rounds(10, seed=3), rounds(20, seed=4), then, then_ref)
    assert same.low < 1.0 < same.high and at_most(same, 1.1) != Verdict.FAIL
    slower = slowdown_ci(rounds(13, seed=3), rounds(20, seed=4), then, then_ref)  # a real 1.3x regression
    assert at_most(slower, 1.1) == Verdict.FAIL and 1.2 < slower.estimate < 1.4


def test_judge_times_more_while_inconclusive_then_fails_saying_so():
    judge = Judge(SpeedGates(min_speedup=1.0), {"a": "ref"}, None)
    r = {"a": list(rounds(10, seed=1)), "ref": list(rounds(10, seed=2))}
    gates, pending = judge.speed(8, r, final=False)
    assert gates[0].verdict == Verdict.INCONCLUSIVE and pending == {"a", "ref"}
    gates, pending = judge.speed(8, r, final=True)
    assert not gates[0].passed and not pending and "inconclusive after 40 rounds" in gates[0].note
    # a regression gate fails on evidence only: a machine too noisy to tell passes, saying it could not tell
    baseline = Baseline(Path("b.json"), {("a", 8): rounds(10, seed=5), ("ref", 8): rounds(10, seed=6)}, {})
    (gate,), _ = Judge(SpeedGates(baseline=Path("b.json"), max_slowdown=0.0), {"a": "ref"}, baseline).speed(8, r, True)
    assert gate.verdict == Verdict.INCONCLUSIVE and gate.passed and "not shown to be slower" in gate.note
    gated = Judge(SpeedGates(min_speedup=1.0, batch_sizes=(1,)), {"a": "ref"}, None)
    assert gated.speed(8, r, final=True) == ([], set())


def test_gate_options_are_validated():
    for kwargs, message in [({"min_speedup": 0}, "`min_speedup` must be positive"),
                            ({"max_slowdown": 0.1}, "`baseline` and `max_slowdown` go together"),
                            ({"batch_sizes": (8,)}, "`gate_batch` restricts gates"),
                            ({"max_rss": 0}, "`max_rss` must be a positive size")]:
        with pytest.raises(UserError, match=message):
            SpeedGates(**kwargs)
    assert parse_fraction("10%", "x") == pytest.approx(0.1) and parse_fraction("0.25", "x") == 0.25
    with pytest.raises(UserError, match="fraction like 10%"):
        parse_fraction("ten", "max_slowdown")


@pytest.fixture(scope="module")
def twins(tiny_onnx, tmp_path_factory):
    """The same artifact under two names: any speedup between them is 1 within noise."""
    folder = tmp_path_factory.mktemp("twins")
    a, b = folder / "a.onnx", folder / "b.onnx"
    shutil.copy(tiny_onnx["swin_test"], a)
    shutil.copy(tiny_onnx["swin_test"], b)
    return a, b


FAST = ("--batch-sizes", "2", "--iterations", "20", "--warmup", "2", "--threads", "1")


def test_min_speedup_fails_and_passes_on_the_same_artifact(cli, twins, tmp_path):
    a, b = twins
    r = cli("bench", a, "--against", b, *FAST, "--min-speedup", "3", "--json", tmp_path / "f.json",
            "--junit", tmp_path / "f.xml")
    assert r.code == 1, r.err
    assert "speedup vs b.onnx" in r.err and "needs >= 3x" in r.err
    doc = json.loads((tmp_path / "f.json").read_text())
    (gate,) = doc["gates"]
    assert gate["verdict"] == "fail" and gate["against"] == "b.onnx" and gate["batch_size"] == 2
    low, high = gate["value"]["ci"]
    assert low <= gate["value"]["estimate"] <= high < 3 and not doc["passed"]
    assert doc["references"] == {"a.onnx": "b.onnx"}
    suite = ET.parse(tmp_path / "f.xml").getroot()
    assert suite.get("failures") == "1" and suite.find("testcase").get("name") == "batch2.min_speedup"
    # classed by the artifact and what ran it, so a run on another runtime or hint is another test when merged
    assert suite.find("testcase").get("classname") == "a.onnx [onnxruntime-cpu, latency]"
    r = cli("bench", a, "--against", b, *FAST, "--min-speedup", "0.3", "--json", tmp_path / "p.json")
    assert r.code == 0, r.err
    doc = json.loads((tmp_path / "p.json").read_text())
    assert doc["passed"] and doc["gates"][0]["verdict"] == "pass"
    (fastest,) = doc["fastest"]  # the twins: one batch size, two runners
    assert fastest["batch_size"] == 2 and {fastest["label"], fastest["next"]} == {"a.onnx", "b.onnx"}
    assert "fastest at batch 2: " in r.out + r.err
    row = next(x for x in doc["results"] if x["label"] == "a.onnx")
    assert row["p50_ci"][0] <= row["p50_ms"] <= row["p50_ci"][1] and len(row["rounds_ms"]) == row["iterations"] >= 20
    assert row["speedup"]["ci"][0] <= row["speedup"]["estimate"] <= row["speedup"]["ci"][1]


def test_two_artifacts_of_one_file_name_keep_a_row_each_and_against_finds_its_own(cli, tiny_onnx, tmp_path):
    """old/model.onnx against new/model.onnx, the usual release comparison: neither row may swallow the other."""
    old, new = tmp_path / "old" / "model.onnx", tmp_path / "new" / "model.onnx"
    for path in (old, new):
        path.parent.mkdir()
        shutil.copy(tiny_onnx["swin_test"], path)
    r = cli("bench", new, "--against", old, *FAST, "--min-speedup", "0.3", "--json", "-")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert {row["label"] for row in doc["results"]} == {"old/model.onnx", "new/model.onnx"}
    assert doc["references"] == {"new/model.onnx": "old/model.onnx"} and len(doc["gates"]) == 1
    # one file named twice was timed as one runner and shown once; `against` spelled otherwise is still the one file
    r = cli("bench", new, tmp_path / "new" / ".." / "new" / "model.onnx", *FAST)
    assert r.code == 2 and r.err.strip() == f"error: model.onnx is given twice (as {new} and " \
        f"{tmp_path / 'new' / '..' / 'new' / 'model.onnx'}): pass each artifact once", r.err
    r = cli("bench", old, new, "--against", tmp_path / "new" / ".." / "old" / "model.onnx", *FAST, "--min-speedup",
            "0.3", "--json", "-")
    assert r.code == 0 and json.loads(r.out)["references"] == {"new/model.onnx": "old/model.onnx"}, r.err


def test_baseline_slowdown_gate_fails_on_a_regression_and_passes_on_an_improvement(cli, twins, tmp_path):
    a, b = twins
    base = tmp_path / "base.json"
    assert cli("bench", a, "--against", b, *FAST, "--json", base).code == 0
    doc = json.loads(base.read_text())

    def edited(factor: float):
        """The baseline as if `a` had been `factor` times its time then (relative to b, measured alike)."""
        d = json.loads(json.dumps(doc))
        for row in d["results"]:
            if row["label"] == "a.onnx":
                row["rounds_ms"] = [t * factor for t in row["rounds_ms"]]
        path = tmp_path / f"base{factor}.json"
        path.write_text(json.dumps(d))
        return path

    r = cli("bench", a, "--against", b, *FAST, "--baseline", edited(0.5), "--max-slowdown", "10%", "--json", "-")
    assert r.code == 1, r.err  # now twice as slow as the baseline says it was
    gate = json.loads(r.out)["gates"][0]
    assert gate["gate"] == "max_slowdown" and gate["verdict"] == "fail" and gate["value"]["ci"][0] > 1.1
    assert gate["artifact_changed"] is False  # the same file: a runtime or machine change, not a new export
    r = cli("bench", a, "--against", b, *FAST, "--baseline", edited(2.0), "--max-slowdown", "10%")
    assert r.code == 0, r.err
    # a re-written file of the same model (what a new export is) is compared, and said to have changed
    import onnx

    proto = onnx.load(str(a))
    proto.doc_string = "re-exported"
    again = tmp_path / "again" / "a.onnx"
    again.parent.mkdir()
    onnx.save(proto, str(again))
    r = cli("bench", again, "--against", b, *FAST, "--baseline", edited(2.0), "--max-slowdown", "10%", "--json", "-")
    assert r.code == 0, r.err
    assert json.loads(r.out)["gates"][0]["artifact_changed"] is True


def test_bench_measures_the_load_beside_it_and_says_when_the_machine_was_busy(cli, twins, tmp_path):
    """A process spinning on a core while bench runs shows in the JSON's `machine_load` (about one core of two) and in a
    note; bench's own threads never count as the machine's load."""
    import subprocess
    import sys

    a, b = twins
    quiet = cli("bench", a, "--against", b, *FAST, "--json", "-")
    assert quiet.code == 0, quiet.err
    load = json.loads(quiet.out)["machine_load"]
    assert load["cores"] == len(machine.usable_cpus()) and load["other_cores"] < 0.5, load  # its own 1-2 threads
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        busy = cli("bench", a, "--against", b, *FAST, "--json", "-")
    finally:
        spinner.kill()
        spinner.wait()
    doc = json.loads(busy.out)
    assert doc["machine_load"]["other_cores"] >= 0.5, doc["machine_load"]
    assert any(n.startswith("the machine was busy: while this ran, other processes kept") for n in doc["notes"])


def test_a_speed_gate_refuses_a_runner_its_reference_does_not_run_beside(cli, tiny_onnx, tmp_path):
    """`--against` compares runners of one runtime: an IR (OpenVINO's alone) against an ONNX run on onnxruntime alone
    has no reference, which is exit 2 saying how to give it one, never a pass with nothing gated."""
    onnx_path = tiny_onnx["swin_test"]
    ir = tmp_path / "m.xml"
    assert cli("convert", onnx_path, "-o", ir).code == 0
    r = cli("bench", ir, "--against", onnx_path, *FAST, "--min-speedup", "0.5", "--json", tmp_path / "no.json")
    assert r.code == 2 and "m.xml runs on openvino" in r.err and "add that runtime to --backend" in r.err, r.err
    assert not (tmp_path / "no.json").exists()
    r = cli("bench", ir, "--against", onnx_path, *FAST, "--min-speedup", "0.01", "--backend", "onnxruntime-cpu,openvino",
            "--json", "-")
    assert r.code == 0, r.err
    assert [(g["label"], g["against"]) for g in json.loads(r.out)["gates"]] == [("m.xml", "swin_test.onnx [openvino]")]


def test_a_baseline_is_found_by_artifact_runtime_and_hint_whatever_the_labels_add(cli, twins, tmp_path):
    """A baseline of a run under two performance hints (runners labelled `a.onnx [latency]`, `a.onnx [throughput]`)
    gates a run under one of them (labelled `a.onnx`): each runner against the baseline's of the same hint."""
    a, b = twins
    base = tmp_path / "both.json"
    assert cli("bench", a, "--against", b, *FAST, "--performance-hint", "latency,throughput", "--json", base).code == 0
    doc = json.loads(base.read_text())
    assert {row["label"] for row in doc["results"]} == {f"{n}.onnx [{h}]" for n in "ab" for h in ("latency", "throughput")}
    for row in doc["results"]:  # as if `a` had taken half its time then, under the throughput hint alone
        if row["label"] == "a.onnx [throughput]":
            row["rounds_ms"] = [t * 0.5 for t in row["rounds_ms"]]
    base.write_text(json.dumps(doc))
    r = cli("bench", a, "--against", b, *FAST, "--performance-hint", "throughput", "--baseline", base,
            "--max-slowdown", "10%", "--json", "-")
    assert r.code == 1, r.err
    gate = json.loads(r.out)["gates"][0]
    assert (gate["label"], gate["gate"], gate["verdict"]) == ("a.onnx", "max_slowdown", "fail")
    r = cli("bench", a, "--against", b, *FAST, "--baseline", base, "--max-slowdown", "50%")  # the latency hint
    assert r.code == 0, r.err


def test_baseline_from_another_model_runtime_or_batch_is_refused(cli, twins, tiny_onnx, tmp_path, monkeypatch):
    a, b = twins
    base = tmp_path / "base.json"
    assert cli("bench", a, "--against", b, *FAST, "--json", base).code == 0
    other = tmp_path / "other" / "a.onnx"  # another model under the same name
    other.parent.mkdir()
    shutil.copy(tiny_onnx["swinv2_test"], other)
    cases = [((other, "--against", b, *FAST), "measured 'a.onnx' as model swin_test"),
             ((a, "--against", b, *FAST[2:], "--batch-sizes", "4"), "has no batch 4 for 'a.onnx'"),
             ((a, "--against", b, *FAST, "--backend", "openvino"), "as runtime onnxruntime-cpu"),
             ((a, "--against", b, *FAST, "--performance-hint", "throughput"), "as performance hint latency"),
             ((a, *FAST), "--baseline and --max-slowdown go together")]
    for args, message in cases:
        extra = ("--baseline", base, "--max-slowdown", "10%") if "go together" not in message else ("--baseline", base)
        r = cli("bench", *args, *extra, "--json", tmp_path / "no.json")
        assert r.code == 2 and message in r.err, (args, r.err)
        assert not (tmp_path / "no.json").exists()
    older = json.loads(base.read_text())  # onnxruntime's runner wrote no hint before it took one: latency
    for runner in older["runners"].values():
        assert runner.pop("performance_hint") == "latency"
    (tmp_path / "older.json").write_text(json.dumps(older))
    r = cli("bench", a, "--against", b, *FAST, "--baseline", tmp_path / "older.json", "--max-slowdown", "90%")
    assert r.code == 0, r.err
    r = cli("bench", a, "--against", b, *FAST, "--baseline", tmp_path / "older.json", "--max-slowdown", "90%",
            "--performance-hint", "throughput")
    assert r.code == 2 and "as performance hint latency" in r.err, r.err
    elsewhere = json.loads(base.read_text())
    isa = "AVX-512+VNNI" if machine.vector_isa() == "AVX2" else "AVX2"  # another ISA than this machine's
    elsewhere["machine"].update(cpu="AMD EPYC 7B13", vector_isa=isa)
    (tmp_path / "avx2.json").write_text(json.dumps(elsewhere))
    r = cli("bench", a, "--against", b, *FAST, "--baseline", tmp_path / "avx2.json", "--max-slowdown", "10%")
    assert r.code == 2 and f"was measured on a CPU with {isa} (AMD EPYC 7B13)" in r.err, r.err
    same_isa = json.loads(base.read_text())
    same_isa["machine"].update(cpu="AMD EPYC, Zen 5", core="Zen 5")
    (tmp_path / "zen5.json").write_text(json.dumps(same_isa))
    with monkeypatch.context() as patched:  # this machine as a Zen 4, for this check only
        patched.setattr(machine, "cpu_core", lambda: "Zen 4")
        r = cli("bench", a, "--against", b, *FAST, "--baseline", tmp_path / "zen5.json", "--max-slowdown", "10%")
    assert r.code == 2 and "was measured on a Zen 5 core (AMD EPYC, Zen 5), this one is a Zen 4 core (" in r.err, r.err
    same_isa["machine"]["core"] = "unknown"  # a core not in the table: the ISA alone decides
    (tmp_path / "zen5.json").write_text(json.dumps(same_isa))
    r = cli("bench", a, "--against", b, *FAST, "--baseline", tmp_path / "zen5.json", "--max-slowdown", "10%")
    assert r.code in (0, 1), r.err
    r = cli("bench", a, "--against", b, *FAST[:-1], "2", "--baseline", base, "--max-slowdown", "10%")  # --threads 2
    assert r.code == 2 and "measured with --threads 1, this run has 2" in r.err, r.err
    bogus = tmp_path / "old.json"
    bogus.write_text(json.dumps({"results": [{"label": "a.onnx", "batch_size": 2}], "runners": {}}))
    r = cli("bench", a, "--against", b, *FAST, "--baseline", bogus, "--max-slowdown", "10%")
    assert r.code == 2 and "per-round times" in r.err
    with pytest.raises(UserError, match="does not exist"):
        Baseline.load(tmp_path / "missing.json")


def test_speed_gates_need_a_reference_enough_rounds_and_benched_batches(cli, twins):
    a, b = twins
    for args, message in [(("--min-speedup", "1.2"), "pass `torch` VARIANT or `against` FILE"),
                          (("--against", b, "--min-speedup", "1.2", "--iterations", "5"), "at least 10 rounds"),
                          (("--against", b, "--min-speedup", "1.2", "--gate-batch", "8"), "`gate_batch` 8 is not benched"),
                          (("--against", b, "--max-slowdown", "ten", "--baseline", a), "fraction like 10%")]:
        r = cli("bench", a, "--batch-sizes", "2", *args)
        assert r.code == 2 and message.replace("`torch`", "--torch").replace("`against`", "--against") \
            .replace("`gate_batch`", "--gate-batch") in r.err, (args, r.err)
    # a JUnit report with no gates in it (tests="0") reads as a pass to CI
    r = cli("bench", a, *FAST, "--junit", a.parent / "none.xml")
    assert r.code == 2 and "--junit records the gates' verdicts: pass a gate" in r.err and not (a.parent / "none.xml").exists()
    # the reference alone: the gate judged nothing and passed (exit 0) however slow anything was
    for args in (("bench", a, "--against", a), ("bench", "--against", a), ("bench", "--torch", "swin_test", "--random-init")):
        r = cli(*args, *FAST, "--min-speedup", "1.2")
        assert r.code == 2 and "and it is the only one here: pass the artifacts to gate beside it" in r.err, (args, r.err)


def test_max_rss_gate_measures_each_runner_in_a_fresh_process(cli, demo, twins, tmp_path):
    """Peak memory of a fresh process holding one runner, and the runner's part of it, for artifacts and PyTorch;
    the gate fails below what was measured and passes above it."""
    a, _ = twins
    _, paths = demo
    r = cli("bench", a, paths["swin_digits"], "--torch", "swin_test", "--random-init", *FAST, "--memory",
            "--json", tmp_path / "m.json")
    assert r.code == 0, r.err
    runners = json.loads((tmp_path / "m.json").read_text())["runners"]
    assert all(0 < run["runner_peak_mib"] < run["peak_rss_mib"] < 8192 for run in runners.values()), runners
    limit = f"{int(runners['a.onnx']['runner_peak_mib']) + 200}MiB"
    r = cli("bench", a, *FAST, "--max-rss", limit, "--json", tmp_path / "ok.json")
    assert r.code == 0, r.err
    (gate,) = json.loads((tmp_path / "ok.json").read_text())["gates"]
    assert gate["gate"] == "max_rss" and gate["verdict"] == "pass"
    r = cli("bench", a, *FAST, "--max-rss", "1MiB", "--junit", tmp_path / "m.xml")
    assert r.code == 1 and "peak host memory" in r.err and "limit 1 MiB" in r.err
    assert ET.parse(tmp_path / "m.xml").getroot().find("testcase/failure") is not None
    assert "runner MiB" not in cli("bench", a, *FAST).out  # measured only when asked


@pytest.mark.parametrize("vendor, family, model, name, expected", [
    ("AuthenticAMD", 25, 17, "AMD EPYC", "AMD EPYC, Zen 4"),  # Genoa, as a cloud VM names it
    ("AuthenticAMD", 25, 1, "AMD EPYC 7B13", "AMD EPYC 7B13, Zen 3"),  # Milan
    ("AuthenticAMD", 26, 2, "AMD EPYC 9B45", "AMD EPYC 9B45, Zen 5"),  # Turin
    ("GenuineIntel", 6, 143, "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz",
     "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz, Sapphire Rapids"),
    ("GenuineIntel", 6, 175, "Intel(R) Xeon(R) 6780E", "Intel(R) Xeon(R) 6780E, Sierra Forest"),
    ("GenuineIntel", 6, 63, "Intel(R) Xeon(R) CPU E5-2690 v3 @ 2.60GHz",
     "Intel(R) Xeon(R) CPU E5-2690 v3 @ 2.60GHz"),  # Haswell: not in the table, the name alone
])
def test_cpu_name_says_the_core_a_bare_model_name_hides(tmp_path, monkeypatch, vendor, family, model, name, expected):
    """Zen 4 and Zen 5 report the same vector flags and, on cloud VMs, the same "AMD EPYC": the core comes from the
    family and model numbers, and a baseline from another core is refused (test above)."""
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nvendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: {model}\n"
                    f"model name\t: {name}\nflags\t\t: fpu avx2 avx512f\n\n")
    monkeypatch.setattr(machine, "CPUINFO", info)
    assert machine.cpu_name() == expected
    assert machine.describe()["core"] == (expected[len(name) + 2:] or "unknown")


X86_FLAGS = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr sse sse2 ht syscall nx lm ssse3 fma cx16 sse4_1 sse4_2 avx"


@pytest.mark.parametrize("flags, isa, exact", [
    ("avx2 bmi2", "AVX2", False),  # AMD EPYC Zen 3
    ("avx2 avx512f avx512bw avx512vl avx512_vnni avx512_bf16 avx_vnni", "AVX-512+VNNI+BF16", True),  # Zen 4/5
    ("avx2 avx512f avx512bw avx512vl avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8", "AVX-512+VNNI+BF16+AMX", True),
    ("avx2 avx512f avx512bw avx512vl", "AVX-512", False),  # Skylake-SP: before Cascade Lake's VNNI
    ("avx2 avx_vnni", "AVX2+AVX-VNNI", True),  # Sierra Forest: exact int8 products without AVX-512
])
def test_on_x86_the_vector_isa_names_what_int8_speed_and_exactness_depend_on(tmp_path, monkeypatch, flags, isa, exact):
    """An AVX-VNNI CPU without AVX-512 read "AVX2", the ISA docs/cpu.md ships 7-bit weights to for want of VNNI."""
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: {X86_FLAGS} {flags}\n\n")
    monkeypatch.setattr(machine, "CPUINFO", info)
    assert (machine.vector_isa(), machine.exact_int8_dot_products()) == (isa, exact)


@pytest.mark.parametrize("system, features, isa, exact", [
    ("Darwin", {"ASIMD": True, "ASIMDDP": True, "AVX2": False}, "NEON+dotprod", None),  # Apple M-series
    ("Windows", {"SSE2": True, "AVX2": True, "AVX512F": True, "AVX512VNNI": True, "AVX512BF16": True},
     "AVX-512+VNNI+BF16", True),
    ("Windows", {"SSE2": True, "AVX2": True, "AVX512F": False}, "AVX2", False),
])
def test_without_proc_cpuinfo_the_isa_comes_from_numpy_and_the_name_from_the_os(tmp_path, monkeypatch, system, features,
                                                                                isa, exact):
    """macOS and Windows have no /proc/cpuinfo: bench tables and reports read "unknown" for the ISA and "arm" or
    family numbers for the CPU."""
    import platform
    import subprocess

    monkeypatch.setattr(machine, "CPUINFO", tmp_path / "none")
    monkeypatch.setattr(machine, "_numpy_features", lambda: features)
    monkeypatch.setattr(platform, "system", lambda: system)
    if system == "Darwin":
        monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(
            cmd, 0, "Apple M2 Pro\n" if cmd == ["sysctl", "-n", "machdep.cpu.brand_string"] else ""))
        assert machine.cpu_name() == "Apple M2 Pro"
    assert (machine.vector_isa(), machine.exact_int8_dot_products()) == (isa, exact)


def test_numpys_view_of_this_cpu_agrees_with_proc_cpuinfo(monkeypatch, tmp_path):
    """The fallback read on this machine's real CPU: the ISA it names is Linux's, less what numpy does not detect."""
    linux = machine.vector_isa()
    monkeypatch.setattr(machine, "CPUINFO", tmp_path / "none")
    arm = linux.startswith(("NEON", "SVE"))
    expected = linux.replace("SVE2", "SVE")
    numpy_bf16 = "AVX512BF16" in machine._numpy_features()  # numpy 2.2 and older do not detect it
    for part in ("+AMX", "+AVX-VNNI", "+I8MM", "+SME", *(["+BF16"] if arm or not numpy_bf16 else [])):
        expected = expected.replace(part, "")
    assert machine.vector_isa() == expected


ARM_FEATURES = "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop"


@pytest.mark.parametrize("part, features, name, isa", [
    ("0xd0c", f"{ARM_FEATURES} asimddp ssbs", "Neoverse N1", "NEON+dotprod"),  # Graviton2, Ampere Altra
    ("0xd40", f"{ARM_FEATURES} sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs paca pacg dcpodp "
              "svei8mm svebf16 i8mm bf16 dgh rng", "Neoverse V1", "SVE+dotprod+I8MM+BF16"),  # Graviton3
    ("0xd4f", f"{ARM_FEATURES} sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs sb paca pacg "
              "dcpodp sve2 sveaes svepmull svebitperm svesha3 svesm4 flagm2 frint svei8mm svebf16 i8mm bf16 dgh rng bti",
     "Neoverse V2", "SVE2+dotprod+I8MM+BF16"),  # Graviton4, Axion
    ("0xd08", "fp asimd evtstrm crc32 cpuid", "aarch64", "NEON"),  # Cortex-A72: not a server core in the table
])
def test_on_arm_the_core_and_vector_isa_come_from_part_and_features(tmp_path, monkeypatch, part, features, name, isa):
    """Linux on arm64 names no model and no flags: a measurement there names the core from its implementer and part
    numbers, and the vector ISA (NEON/SVE/SVE2, int8 dot products, I8MM, BF16) from its Features line."""
    import platform

    info = tmp_path / "cpuinfo"
    info.write_text("".join(f"processor\t: {i}\nBogoMIPS\t: 2100.00\nFeatures\t: {features}\nCPU implementer\t: 0x41\n"
                            f"CPU architecture: 8\nCPU variant\t: 0x1\nCPU part\t: {part}\nCPU revision\t: 1\n\n"
                            for i in range(2)))
    monkeypatch.setattr(machine, "CPUINFO", info)
    monkeypatch.setattr(platform, "processor", lambda: "")
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    assert (machine.cpu_name(), machine.vector_isa()) == (name, isa)
    assert machine.describe()["core"] == (name if name.startswith("Neoverse") else "unknown")
    assert machine.exact_int8_dot_products() is None  # the int16-saturation note is x86's alone


def test_bench_takes_one_artifact_path_alone(tiny_onnx):
    """A library caller's bench_artifacts("m.onnx") took the str apart into one-letter paths ("/ does not exist")."""
    from swin_deploy.bench import BenchOptions, bench_artifacts

    report = bench_artifacts(str(tiny_onnx["swin_test"]), BenchOptions(iterations=2, batch_sizes=(1,)))
    assert [r.label for r in report.results] == ["swin_test.onnx"]


def test_bench_says_where_the_tensorrt_int8_runs_slow_on_a_cpu(cli, artifacts):
    """The TensorRT-target INT8 on onnxruntime's CPU times slower than float (a new user's first table): bench says
    so, once, with what to run instead; not for it on OpenVINO, nor for the onnxruntime-target INT8."""
    r = cli("bench", artifacts["int8"], artifacts["int8_ort"], "--backend", "onnxruntime-cpu,openvino",
            "--batch-sizes", "1", "--iterations", "2", "--json", "-")
    assert r.code == 0, r.err
    notes = [n for n in json.loads(r.out)["notes"] if "INT8 for TensorRT" in n]
    assert notes == [f"{artifacts['int8'].name} on onnxruntime-cpu: INT8 for TensorRT (symmetric int8, float16 between "
                     "the Q/DQ), which onnxruntime's CPU runs slower than float: on a CPU run it with `backend` "
                     "openvino, or quantize with `target` onnxruntime (docs/cpu.md)"], notes
    r = cli("bench", artifacts["int8"], "--batch-sizes", "1", "--iterations", "2")  # on the command line, its flags
    assert r.code == 0 and "run it with --backend openvino, or quantize with --target onnxruntime" in " ".join(
        r.err.split()), r.err


def test_a_cpu_quota_is_read_from_the_cgroup_files_of_either_version(tmp_path):
    """A container's CPU limit as the kernel keeps it: cgroup v2's cpu.max, or v1's cfs quota and period under the cpu
    controller's mount (cpu, or cpu,cpuacct); none where the group sets no limit or there is no cgroup."""
    def tree(name, cgroup, files):
        root = tmp_path / name
        (root / "proc/self").mkdir(parents=True)
        (root / "proc/self/cgroup").write_text(cgroup)
        for path, text in files.items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text(text)
        return machine.CpuQuota.of_this_process(root)

    stat = "nr_periods 120\nnr_throttled 30\nthrottled_usec 9000\n"
    v2 = tree("v2", "0::/ci.slice/job-7\n", {"sys/fs/cgroup/ci.slice/job-7/cpu.max": "150000 100000\n",
                                              "sys/fs/cgroup/ci.slice/job-7/cpu.stat": stat})
    assert v2 is not None and v2.cpus() == 1.5 and v2.periods() == (120, 30)
    v1 = tree("v1", "not a cgroup line\n4:memory:/pod\n3:cpu,cpuacct:/pod/c1\n0::/\n",
              {"sys/fs/cgroup/cpu,cpuacct/pod/c1/cpu.cfs_quota_us": "50000\n",
               "sys/fs/cgroup/cpu,cpuacct/pod/c1/cpu.cfs_period_us": "100000\n",
               "sys/fs/cgroup/cpu,cpuacct/pod/c1/cpu.stat": "nr_periods 10\nnr_throttled 9\nthrottled_time 5\n"})
    assert v1 is not None and v1.cpus() == 0.5 and v1.periods() == (10, 9)
    # in a container without a cgroup namespace the path is the host's, and the mount's root the container's group
    docker = tree("docker", "1:cpu:/docker/4f2a/job\n", {"sys/fs/cgroup/cpu/job/cpu.cfs_quota_us": "200000\n",
                                                        "sys/fs/cgroup/cpu/job/cpu.cfs_period_us": "100000\n"})
    assert docker is not None and docker.cpus() == 2.0
    assert tree("unlimited", "0::/\n", {"sys/fs/cgroup/cpu.max": "max 100000\n"}) is None
    assert tree("v1_unlimited", "1:cpu:/\n", {"sys/fs/cgroup/cpu/cpu.cfs_quota_us": "-1\n",
                                             "sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000\n"}) is None
    assert machine.CpuQuota.of_this_process(tmp_path / "nothing") is None


def test_threads_left_to_the_runtime_are_the_quotas_under_a_cpu_quota(monkeypatch):
    """Under a CPU quota below the cores the process may run on, the threads left to the runtime are the quota's whole
    CPUs (at least 1); a quota of all the cores, none, or threads given leave them as they were."""
    from swin_deploy.backends import checked_threads

    def quota(cpus):
        monkeypatch.setattr(machine.CpuQuota, "of_this_process", classmethod(
            lambda cls, root=None: None if cpus is None else type("Q", (), {"cpus": lambda self: cpus})()))

    monkeypatch.setattr(machine, "usable_cpus", lambda: [0, 1, 2, 3])
    for cpus, threads in ((None, None), (4.0, None), (6.0, None), (2.5, 2), (1.0, 1), (0.5, 1)):
        quota(cpus)
        assert (machine.quota_threads(), checked_threads(None), checked_threads(3)) == (threads, threads, 3), cpus


def test_export_and_quantize_sessions_take_the_quotas_threads_too(monkeypatch, artifacts):
    """The onnxruntime sessions export's parity check, quantize's calibration and the FP16 overflow probe make, and
    the OpenVINO compile convert checks with, take a CPU quota's CPUs as threads (the runtimes' default, one per core,
    is throttled under it), and the default otherwise (0, or none given)."""
    import onnx

    from calibration.ranges import TensorStats
    from swin_deploy.backends.onnxruntime_runner import OnnxRuntimeRunner
    from swin_deploy.precision.fp16 import Float16Probe

    model, fp16 = onnx.load(str(artifacts["fp32"])), onnx.load(str(artifacts["fp16"]))
    monkeypatch.setattr(machine, "usable_cpus", lambda: [0, 1, 2, 3])
    for cpus, threads in ((None, 0), (1.0, 1), (2.5, 2)):
        monkeypatch.setattr(machine.CpuQuota, "of_this_process", classmethod(
            lambda cls, root=None, cpus=cpus: None if cpus is None else type("Q", (), {"cpus": lambda self: cpus})()))
        with OnnxRuntimeRunner(artifacts["fp32"]) as runner:
            assert runner.session.get_session_options().intra_op_num_threads == threads
        if importlib.util.find_spec("openvino"):  # convert's check against the ONNX runs on OpenVINO
            from swin_deploy.backends.openvino_runner import OpenVinoRunner

            with OpenVinoRunner(artifacts["fp32"]) as runner:
                assert runner.config.get("INFERENCE_NUM_THREADS") == (threads or None)
        stats = TensorStats(model)._session([model.graph.output[0].name])
        probe = Float16Probe(fp16)
        for session in (stats, probe._session(list(probe.typed)[:1])):
            assert session.get_session_options().intra_op_num_threads == threads


def _bench_in_a_cpu_quota(cpus, *args):
    """`swin-deploy bench ... --json -` run in a cgroup v1 group limited to `cpus` CPUs, where this machine lets the
    test make one (root, a writable cpu controller); skips elsewhere."""
    import subprocess
    import sys

    group = Path("/sys/fs/cgroup/cpu") / f"swin-deploy-test-{os.getpid()}"
    try:
        group.mkdir()
        (group / "cpu.cfs_quota_us").write_text(str(int(int((group / "cpu.cfs_period_us").read_text()) * cpus)))
    except OSError as e:
        if group.exists():
            group.rmdir()
        pytest.skip(f"no cgroup v1 cpu group can be made here ({e})")
    command = [sys.executable, "-m", "cli", "bench", *map(str, args), "--json", "-"]
    try:
        r = subprocess.run(["sh", "-c", f'echo $$ > {group}/cgroup.procs && exec "$@"', "sh", *command],
                           capture_output=True, text=True, cwd=Path(__file__).parents[1], timeout=300)
    finally:
        group.rmdir()
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_bench_says_when_a_cpu_quota_throttled_it(twins):
    """Under a CPU quota smaller than bench's threads the kernel stops the process group for part of each period, which
    neither the cores' load nor the affinity shows: the JSON records it and a note says so. Left to choose, bench
    takes the quota's threads and is not throttled."""
    a, b = twins
    doc = _bench_in_a_cpu_quota(0.1, a, "--against", b, *FAST)  # a tenth: bench's pauses between turns do not hide it
    assert doc["machine_load"]["quota_cpus"] == 0.1 and doc["machine_load"]["throttled_periods"] >= 0.1, doc
    assert any(n.startswith("the CPU quota throttled this run: its cgroup may use 0.1 CPUs") and
               n.endswith("bench where the quota covers the threads") for n in doc["notes"]), doc["notes"]
    if len(machine.usable_cpus()) < 2:
        return
    doc = _bench_in_a_cpu_quota(1.0, a, "--against", b, *FAST[:-2])
    assert doc["threads"] == 1 and doc["machine_load"]["throttled_periods"] < 0.1, doc
    assert not any(n.startswith("the CPU quota") for n in doc["notes"]), doc["notes"]
