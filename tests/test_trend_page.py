"""Trends with commits on the x-axis, and the one self-contained HTML page of them all."""

import base64
import struct
from html.parser import HTMLParser

import numpy as np
import pytest
from gate_results import ENV, failed_result, timed_result

from zhisuan.bench.cli import main
from zhisuan.bench.gate import trend, trend_chart
from zhisuan.bench.gate.history import History
from zhisuan.bench.gate.settings import GateSettings

EVIL = '<script>alert("x")</script>&$_{$'  # markup, an entity, broken TeX for matplotlib


def result(median_s, run_id, sha, *, seed, timestamp, backend="cpp", device="Test CPU 9000", **fields):
    env = {**ENV, "git_sha": sha}
    return timed_result(median_s, seed=seed, backend=backend, run_id=run_id, timestamp=timestamp,
                        device_name=device, env=env, **fields)  # fmt: skip


def test_commits_in_first_seen_order_with_their_runs_side_by_side():
    results = [
        result(1e-3, "r0", "aaaa111", seed=0, timestamp=1.0),
        result(1e-3, "r1", "bbbb222", seed=1, timestamp=2.0),
        result(1e-3, "r2", "bbbb222", seed=2, timestamp=3.0),
        result(1e-3, "r3", "", seed=3, timestamp=4.0),  # no commit recorded: a place of its own
        result(1e-3, "r4", "aaaa111", seed=4, timestamp=5.0),  # a commit measured again later
    ]
    points = trend.judge(results, GateSettings())
    keys, xs = trend_chart.commit_positions(points)
    assert keys == ["aaaa111", "bbbb222", "run:r3"]
    assert [trend_chart.commit_label(k) for k in keys] == ["aaaa111", "bbbb222", "r3"]
    assert (
        xs[1] < 1 < xs[2] and xs[3] == 2 and xs[0] < 0 < xs[4] and all(abs(x - round(x)) <= 0.2 for x in xs)
    )
    with pytest.raises(ValueError, match="no run with a timing"):
        trend_chart.trend_figure(trend.judge([failed_result()], GateSettings()), "t")


class Page(HTMLParser):
    """Every tag with its attributes, every id, and the text outside tags."""

    def __init__(self):
        super().__init__()
        self.tags, self.ids, self.text = [], set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if "id" in attrs:
            self.ids.add(attrs["id"])

    def handle_data(self, data):
        self.text.append(data)


def _png_width(png: bytes) -> int:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">I", png[16:20])[0]


def test_the_trends_page_is_self_contained_escaped_and_linked(tmp_path, capsys):
    db = tmp_path / "history.db"
    with History(db) as h:
        for i, m in enumerate([1.0e-3, 1.01e-3, 0.99e-3, 1.3e-3]):  # cpp steps up in the last run
            sha = f"{i}{i}{i}{i}abcdef"
            h.add([result(m, f"r{i}", sha, seed=i, timestamp=1.7e9 + i),
                   result(2e-3, f"r{i}", sha, seed=10 + i, timestamp=1.7e9 + i, backend=EVIL, device=EVIL)],
                  branch=EVIL if i == 3 else "main")  # fmt: skip
        h.add([failed_result(backend="crashy", run_id="r9", timestamp=1.8e9)], branch="main")
    out = tmp_path / "site" / "trends.html"
    assert main(["history", "html", "--db", str(db), "--out", str(out), "--title", f"trends {EVIL}"]) == 0
    assert "3 benchmarks, 1 regressed in their latest run" in capsys.readouterr().out
    html = out.read_text(encoding="utf-8")
    page = Page()
    page.feed(html)
    tags = [t for t, _ in page.tags]

    # Self-contained: no scripts, no external style sheets, frames or objects; every image inline.
    assert not {"script", "link", "iframe", "object", "embed"} & set(tags)
    images = [a for t, a in page.tags if t == "img"]
    assert len(images) == 2  # crashy has no timed run: listed, without a chart
    for img in images:
        prefix = "data:image/png;base64,"
        assert img["src"].startswith(prefix)
        assert _png_width(base64.b64decode(img["src"][len(prefix) :])) == int(img["width"])
    assert all(not a.get("src") or a["src"].startswith("data:") for _, a in page.tags)
    assert "@import" not in html and "url(" not in html

    # Escaped: the hostile names come back as text, never as markup.
    assert "<script>" not in html and "alert" in "".join(page.text)
    assert sum(EVIL in t for t in page.text) >= 4  # title, table, heading, branch column

    # Linked: the summary table points at every benchmark's anchor, each anchor exists.
    links = [a["href"] for t, a in page.tags if t == "a"]
    assert all(link.startswith("#") for link in links)
    targets = {link[1:] for link in links}
    assert "benchmarks" in targets and len(targets - {"benchmarks"}) == 3 and targets <= page.ids
    text = " ".join(page.text)
    assert "regressed" in text and "1111abc" in text and "3333abc" in text  # verdicts, short SHAs
    assert "no run with a timing" in text


def test_html_of_one_branch_and_refusals(tmp_path, capsys):
    db = tmp_path / "history.db"
    with History(db) as h:
        h.add([result(1e-3, "m0", "aaaa1111", seed=0, timestamp=1.0)], branch="main")
        h.add([result(1e-3, "f0", "bbbb2222", seed=1, timestamp=2.0, backend="torch")], branch="feature")
    out = tmp_path / "main.html"
    assert main(["history", "html", "--db", str(db), "--out", str(out), "--branch", "main"]) == 0
    html = out.read_text()
    assert "matmul/cpp/" in html and "matmul/torch/" not in html and "branch main" in html
    assert main(["history", "html", "--db", str(db), "--out", str(out), "attention/*"]) == 2
    assert "no benchmark matches 'attention/*'" in capsys.readouterr().err
    assert main(["history", "html", "--db", str(db), "--out", str(tmp_path)]) == 2  # a directory
    assert "is a directory" in capsys.readouterr().err


def _series(seed: int) -> list:
    """60 commits (every third measured twice: 80 runs), 2 % noise within a run, 3 % between runs,
    30 % slower from commit 30 to 44: the step up is run 40, the step back down run 60."""
    rng = np.random.default_rng(seed)
    results = []
    for commit in range(60):
        for _ in range(1 + (commit % 3 == 0)):
            level = 1.3 if 30 <= commit < 45 else 1.0
            median = 1e-3 * level * (1 + 0.03 * rng.standard_normal())
            i = len(results)
            results.append(result(median, f"r{i}", f"{commit:04x}beef", seed=1000 * seed + i, timestamp=i))
    return results


@pytest.mark.parametrize("seed", [0, 2])
def test_a_window_of_runs_marks_the_real_steps_and_few_others(seed):
    results = _series(seed)
    marks = {}
    for window in (1, trend.DEFAULT_WINDOW):
        points = trend.judge(results, GateSettings(), window=window)
        marks[window] = {i: p.verdict for i, p in enumerate(points) if p.verdict in ("regressed", "improved")}
    steps = {40: "regressed", 60: "improved"}
    assert {i: marks[trend.DEFAULT_WINDOW].get(i) for i in steps} == steps
    false_marks = {window: len(set(m) - set(steps)) for window, m in marks.items()}
    assert false_marks[trend.DEFAULT_WINDOW] <= 3 and false_marks[1] >= 10, false_marks
