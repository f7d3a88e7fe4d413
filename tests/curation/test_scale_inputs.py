"""Source lists at scale: 1 % malformed rows are each reported with file:line and the rest run; duplicates merge."""

from __future__ import annotations

import time

from talkbench.curation.readers import issues_as_rejections, read_sources

N = 30_000  # 1M rows read in ~45 CPU-s (measured 0.83 CPU-s per 20k); 30k keeps the test at a few seconds


def _write_list(path, n, bad_every=100):
    """A CSV of n data rows; every ``bad_every``-th one is malformed in one of four ways. Returns {line: kind}."""
    lines = ["url,start,end,identity"]
    bad = {}
    kinds = ["fields", "time", "order", "nourl"]
    for i in range(n):
        line_no = i + 2
        url = f"https://example.org/v/{i:06d}.mp4"
        if i % bad_every == 7:
            kind = kinds[(i // bad_every) % 4]
            bad[line_no] = kind
            lines.append({"fields": f"{url},1,2,p{i % 50},extra",
                          "time": f"{url},1:xx,5,p{i % 50}",
                          "order": f"{url},9,3,p{i % 50}",
                          "nourl": f",1,2,p{i % 50}"}[kind])
        else:
            lines.append(f"{url},{i % 30},{i % 30 + 4},p{i % 50}")
    path.write_text("\n".join(lines) + "\n")
    return bad


def test_thirty_thousand_rows_with_one_percent_malformed(tmp_path):
    path = tmp_path / "big.csv"
    bad = _write_list(path, N)
    t = time.perf_counter()
    rows, issues = read_sources([path])
    seconds = time.perf_counter() - t
    assert len(bad) == N // 100
    assert {i.line: i.file for i in issues} == {line: "big.csv" for line in bad}  # every one, and only those
    reasons = {i.line: i.reason for i in issues}
    assert all("fields" in reasons[l] for l, k in bad.items() if k == "fields")
    assert all("bad time" in reasons[l] for l, k in bad.items() if k == "time")
    assert all("not after start" in reasons[l] for l, k in bad.items() if k == "order")
    assert all(reasons[l] == "no url" for l, k in bad.items() if k == "nourl")
    assert len(rows) == N - len(bad)
    assert [r["list_line"] for r in rows[:3]] == [2, 3, 4]
    assert all(str(i).startswith("big.csv:") for i in issues[:5])
    rejections = issues_as_rejections(issues)
    assert len(rejections) == len(bad) and rejections[0]["item_id"] == f"big.csv:{min(bad)}"
    assert seconds < 60, f"reading {N} rows took {seconds:.1f} s"


def test_duplicate_sources_across_lists_merge_deterministically(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("url,start,end,identity\n" + "".join(f"https://example.org/v/{i}.mp4,0,5,p{i}\n" for i in range(300)))
    # b repeats every third video of a: same span (a pure duplicate), or a new span, or a conflicting identity.
    lines = []
    for i in range(0, 300, 3):
        kind = (i // 3) % 3
        lines.append(f"https://example.org/v/{i}.mp4,{0 if kind == 0 else 10},{5 if kind == 0 else 15},"
                     f"{'other' if kind == 2 else f'p{i}'}\n")
    b.write_text("url,start,end,identity\n" + "".join(lines))
    rows, issues = read_sources([a, b])
    again, issues_again = read_sources([a, b])
    assert rows == again and [str(i) for i in issues] == [str(i) for i in issues_again]
    assert len(rows) == 300 and len({r["source_id"] for r in rows}) == 300
    by_url = {r["url"]: r for r in rows}
    assert [(s["start"], s["end"]) for s in by_url["https://example.org/v/0.mp4"]["spans"]] == [(0.0, 5.0)]
    assert [(s["start"], s["end"]) for s in by_url["https://example.org/v/3.mp4"]["spans"]] == [(0.0, 5.0), (10.0, 15.0)]
    # The first list on the command line wins label and provenance.
    assert by_url["https://example.org/v/6.mp4"]["source_label"] == "p6"
    assert all(r["list_file"].endswith("a.csv") for r in rows)
    kinds = sorted({i.kind for i in issues})
    assert kinds == ["duplicate_row", "identity_conflict"]
    assert sum(i.kind == "duplicate_row" for i in issues) == 34 and sum(i.kind == "identity_conflict" for i in issues) == 33
    # Listing the lists the other way round: the same videos and spans, now b's label wins where they conflict.
    flipped, _ = read_sources([b, a])
    assert [(r["url"], r["spans"]) for r in flipped] == [(r["url"], r["spans"]) for r in rows]
    assert {r["url"]: r["source_label"] for r in flipped}["https://example.org/v/6.mp4"] == "other"
