import csv
import io
import json

import pytest

from mixnas.cost import count_flops, count_params
from mixnas.pipeline import load_pipeline_config, load_supernet, score
from mixnas.pipeline.collect import collect, collect_columns, latency_protocol_path, load_collected, read_rows
from mixnas.space import arch_from_dict


def test_columns_and_values_match_independent_computation(trained_micro, tmp_path):
    cfg, supernet_dir = trained_micro
    out = tmp_path / "c.csv"
    assert collect(cfg, supernet_dir, out, num_archs=3) == {"rows": 3, "new_rows": 3, "path": str(out)}
    task, space, supernet = load_supernet(cfg, supernet_dir)
    rows = load_collected(out)
    assert list(rows[0]) == collect_columns(space, cfg.task)
    model_config = task.model_config(cfg.model.config)
    for i, row in enumerate(rows):
        arch = row["arch"]
        assert row["index"] == i and row["latency_ms"] is None
        # inherited score = the extracted standalone model's score on the same subset
        standalone = score(task, supernet.extract(arch), cfg.collect.score_limit)
        assert row["score"] == pytest.approx(standalone["accuracy"], abs=1e-9)
        assert row["val_loss"] == pytest.approx(standalone["loss"], rel=1e-5)
        assert row["params"] == count_params(arch, model_config) > row["params_no_emb"]
        assert row["flops_no_emb"] == count_flops(arch, model_config, include_embeddings=False)
        features = [row[f"feat:{n}"] for n in space.feature_names()]
        assert features == pytest.approx(list(space.encode(arch)))


def test_reproducible_and_resumes_after_partial_rows(trained_micro, tmp_path):
    cfg, supernet_dir = trained_micro
    full, part = tmp_path / "full.csv", tmp_path / "part.csv"
    collect(cfg, supernet_dir, full, num_archs=5)
    collect(cfg, supernet_dir, part, num_archs=2)
    assert part.read_text().splitlines() == full.read_text().splitlines()[:3]  # header + 2 rows
    assert collect(cfg, supernet_dir, part, num_archs=5)["new_rows"] == 3
    assert part.read_text() == full.read_text()
    # a killed run: the file holds the rows of the last completed chunk
    lines = full.read_text().splitlines(keepends=True)
    part.write_text("".join(lines[:4]))
    assert collect(cfg, supernet_dir, part, num_archs=5)["new_rows"] == 2
    assert part.read_text() == full.read_text()


def test_rows_of_another_seed_are_refused(trained_micro, tmp_path):
    cfg, supernet_dir = trained_micro
    out = tmp_path / "c.csv"
    collect(cfg, supernet_dir, out, num_archs=2)
    other = load_pipeline_config("micro", [f"run_dir={cfg.run_dir}", "seed=2"])
    with pytest.raises(ValueError, match="another architecture"):
        collect(other, supernet_dir, out, num_archs=3)
    out.write_text("index,arch\n")
    with pytest.raises(ValueError, match="has columns"):
        read_rows(out, collect_columns(load_supernet(cfg, supernet_dir)[1], cfg.task))


def test_latency_is_measured_when_asked(trained_micro, tmp_path):
    cfg, supernet_dir = trained_micro
    cfg = load_pipeline_config("micro", [f"run_dir={cfg.run_dir}", "collect.latency=true",
                                         "collect.latency_runs=2", "collect.latency_warmup=0"])
    collect(cfg, supernet_dir, tmp_path / "c.csv", num_archs=2)
    rows = load_collected(tmp_path / "c.csv")
    assert all(row["latency_ms"] > 0 and row["latency_std_ms"] >= 0 for row in rows)
    assert arch_from_dict(json.loads(read_rows(tmp_path / "c.csv")[0]["arch"])) == rows[0]["arch"]
    # the protocol is recorded beside the table; a collection continues only with the same one
    protocol = json.loads(latency_protocol_path(tmp_path / "c.csv").read_text())
    assert latency_protocol_path(tmp_path / "c.csv") == tmp_path / "c.latency.json"
    assert (protocol["clock"], protocol["stat"], protocol["threads"], protocol["runs"], protocol["warmup"]) == (
        "oncpu", "min", 1, 2, 0)
    assert collect(cfg, supernet_dir, tmp_path / "c.csv", num_archs=3)["new_rows"] == 1
    other = load_pipeline_config("micro", [f"run_dir={cfg.run_dir}", "collect.latency=true", "collect.latency_runs=2",
                                           "collect.latency_warmup=0", "collect.latency_clock=wall"])
    with pytest.raises(ValueError, match=r"c.csv holds latencies measured with another protocol than "
                                         r"collect.latency_\* \(clock: oncpu -> wall, recorded in .*c.latency.json\)"):
        collect(other, supernet_dir, tmp_path / "c.csv", num_archs=4)
    latency_protocol_path(tmp_path / "c.csv").unlink()  # a table of unknown protocol is refused too
    with pytest.raises(ValueError, match=r"another protocol .*clock: unrecorded -> oncpu"):
        collect(cfg, supernet_dir, tmp_path / "c.csv", num_archs=4)


def test_missing_supernet_is_a_clear_error(tmp_path):
    cfg = load_pipeline_config("micro", [f"run_dir={tmp_path}"])
    with pytest.raises(ValueError, match="run `mixnas train-supernet` first"):
        collect(cfg, tmp_path / "supernet", tmp_path / "c.csv")


def _damage(text: str, how: str) -> str:
    """`text` (a good collect CSV) damaged in one of the ways a disk, an editor or a kill can."""
    lines = text.splitlines(keepends=True)
    header = lines[0].rstrip("\n").split(",")
    if how == "truncated":  # cut in the middle of the last row's arch JSON (an unclosed quote)
        return text[: len("".join(lines[:-1])) + len(lines[-1]) // 2]
    if how == "junk":  # e.g. a block of the disk that is not text: one endless field
        return lines[0] + "x" * 200_000 + "\n"
    if how == "not-a-number":
        cells = lines[2].split(",")
        cells[-1] = "abc\n"  # the last feature column of row 2
        return "".join(lines[:2] + [",".join(cells)] + lines[3:])
    if how == "wrong-index":
        return "".join(lines[:2] + ["7" + lines[2][1:]] + lines[3:])
    if how == "missing-column":
        drop = header.index("score")
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(row[:drop] + row[drop + 1:] for row in csv.reader(lines))
        return out.getvalue()
    if how == "bad-arch":
        return lines[0] + lines[1].replace('"type"', '"tipe"', 1) + "".join(lines[2:])
    if how == "short-row":
        return "".join(lines[:3]) + "2,\n"
    raise AssertionError(how)


@pytest.mark.parametrize("how, message", [
    ("truncated", r"row 3 has fewer cells"),
    ("junk", r"line 2 is not valid CSV \(field larger than field limit"),
    ("not-a-number", r"row 2: feat:\S+ is 'abc', not a number"),
    ("wrong-index", r"row 2 has index '7', expected 1"),
    ("missing-column", r"is not a collect table \(no score column\)"),
    ("bad-arch", r"row 1: arch is not an architecture"),
    ("short-row", r"row 3 has fewer cells"),
])
def test_damaged_table_is_one_line_naming_file_and_row(trained_micro, tmp_path, how, message):
    cfg, supernet_dir = trained_micro
    good = tmp_path / "good.csv"
    collect(cfg, supernet_dir, good, num_archs=3)
    bad = tmp_path / "bad.csv"
    bad.write_text(_damage(good.read_text(), how))
    for read in (load_collected, read_rows):
        with pytest.raises(ValueError, match=message) as error:
            read(bad)
        text = str(error.value)
        assert str(bad) in text and "another --out" in text and "\n" not in text


def test_damaged_table_in_the_collect_command(trained_micro, tmp_path, capsys):
    from mixnas.cli import main

    cfg, supernet_dir = trained_micro
    out = tmp_path / "c.csv"
    collect(cfg, supernet_dir, out, num_archs=2)
    out.write_text(_damage(out.read_text(), "not-a-number"))
    rc = main(["collect", "--config", "micro", f"run_dir={tmp_path}", "--supernet", str(supernet_dir),
               "--out", str(out), "--num-archs", "3"])
    captured = capsys.readouterr()
    assert rc == 2 and captured.err.count("\n") == 1, captured.err
    assert f"{out} row 2:" in captured.err and "not a number" in captured.err
