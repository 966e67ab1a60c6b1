"""The benchmark's speed record: every path's ratios kept across runs, and the no-AMX column."""

from __future__ import annotations

import json

from benchmarks import history
from benchmarks.measure import UNTOLD, DenoiseRow, PrecisionRow, SRRow
from benchmarks.render import precision_section
from benchmarks.run import speed_records
from imgdiff.eval.evaluate import MethodScores


def scores(seconds: float, psnr: float = 30.0) -> MethodScores:
    return MethodScores(psnr=[psnr], ssim=[0.9], seconds=seconds, megapixels=1.0)


def rows(no_amx: bool):
    den = [DenoiseRow("CBSD68", 25, 1, 1, "1x1", 0, {"imgdiff": scores(1.0), "nlmeans": scores(2.0)})]
    sr = [SRRow("Set14", 4, 1, 1, {"imgdiff": scores(1.0), "LapSRN": scores(4.0)}, ["a.png"], {})]
    precision = [
        PrecisionRow("CBSD68", "denoise", 25, scores(1.0), scores(1.5), scores(3.0), scores(1.8) if no_amx else None),
        PrecisionRow("Set14", "upscale", 4, scores(1.0), scores(1.2), scores(6.0), scores(2.0) if no_amx else None),
        PrecisionRow("CBSD68", UNTOLD, 25, scores(1.4), scores(1.9), scores(3.4), scores(2.2) if no_amx else None),
    ]
    return den, sr, precision


def test_speed_records_name_each_path_and_divide_by_the_peer():
    den, sr, precision = rows(no_amx=True)
    recs = speed_records(precision, den, sr, (1.5, 1.2, 0.25), "bf16 (amx)", "fp32, int8 (avx512_vnni)")
    assert [r["path"].split(":")[0] for r in recs] == [
        "auto",
        "capped ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16",
        "capped to AVX2",
    ]
    assert [(r["denoise_vs_nlmeans"], r["x4_vs_lapsrn"]) for r in recs] == [(0.5, 0.25), (0.9, 0.5), (1.5, 1.5)]
    # the no-options call (noise read from the image) is its own ratio on every path
    assert [r["denoise_untold_vs_nlmeans"] for r in recs] == [0.7, 1.1, 1.7]
    assert [r["overhead_s"] for r in recs] == [0.25, None, None]
    den, sr, precision = rows(no_amx=False)
    assert len(speed_records(precision, den, sr, None, "fp32", None)) == 2  # no AMX here: no capped record


def test_history_keeps_other_machines_and_replaces_a_rerun(tmp_path):
    old = {"date": "2026-12-03", "commit": "aaa", "cpu": "Zen 4", "path": "auto: bf16", "denoise_vs_nlmeans": 0.9}
    (tmp_path / history.FILE).write_text(json.dumps([old]))
    new = {"date": "2026-12-04", "commit": "bbb", "cpu": "Xeon", "path": "auto: bf16 (amx)", "denoise_vs_nlmeans": 0.5}
    history.append(tmp_path, [new])
    runs = history.append(tmp_path, [{**new, "denoise_vs_nlmeans": 0.6}])  # the same run again replaces it
    assert [(r["cpu"], r["denoise_vs_nlmeans"]) for r in runs] == [("Xeon", 0.6), ("Zen 4", 0.9)]
    assert history.rows(runs)[1][3] == "0.90x" and history.rows(runs)[0][4] == "—" == history.rows(runs)[0][5]
    later = {**new, "commit": "ccc"}  # a second run the same day goes above the first
    runs = history.append(tmp_path, [later])
    assert [r["commit"] for r in runs] == ["ccc", "bbb", "aaa"]
    (tmp_path / history.FILE).write_text("{not json")
    assert history.load(tmp_path) == []  # a damaged record is no reason to lose the run


def test_precision_section_shows_the_no_amx_column_only_when_measured():
    den, sr, precision = rows(no_amx=True)
    text = "\n".join(precision_section(precision, den, sr, None, "a CPU", "fp32 with int8", []))
    assert "no-AMX-capped" in text and "0.90x" in text and "fp32 with int8" in text
    assert (
        "| CBSD68 | σ=25, no options |" in text
        and "no options (noise read from the image) vs NL-means | 2.00 | 0.70x" in text
    )
    den, sr, precision = rows(no_amx=False)
    assert "no-AMX" not in "\n".join(precision_section(precision, den, sr, None, "a CPU"))
