"""The dashboards' SVG charts: well-formed, accessible (title and a description stating the
figures), escaped, proportional, small."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from healthcard.web.charts import Point, bars, columns, hbars

SVG = "{http://www.w3.org/2000/svg}"


def _parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # well-formed XML, or this raises
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    return root


def _bar_heights(root: ET.Element) -> list[float]:
    return [float(r.get("height", 0)) for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]


def test_bars_are_proportional_and_the_description_states_every_figure() -> None:
    svg = bars("基金支出", [Point("村", 100), Point("乡", 400), Point("县", 200)], fmt=lambda v: f"{v:.0f}元")
    root = _parse(svg)
    assert root.findtext(f"{SVG}title") == "基金支出"
    assert root.findtext(f"{SVG}desc") == "村 100元; 乡 400元; 县 200元"
    low, high, middle = _bar_heights(root)
    assert high == pytest.approx(4 * low) and middle == pytest.approx(2 * low)


def test_text_is_escaped() -> None:
    svg = bars("<script>alert(1)</script>", [Point("<b>&", 1)])
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    _parse(svg)


def test_hbars_clamp_a_share_to_the_track_and_say_the_real_figure() -> None:
    svg = hbars("接种率", [Point("乙肝疫苗 1", 96.5), Point("麻腮风 1", 120.0), Point("脊灰 1", -3)])
    root = _parse(svg)
    widths = [float(r.get("width", 0)) for r in root.iter(f"{SVG}rect")]
    track = widths[0]
    assert widths[1] == pytest.approx(track * 0.965, abs=0.1)
    assert widths[3] == pytest.approx(track)  # 120 % drawn full, stated as 120.0%
    assert widths[5] == 0
    assert "麻腮风 1 120.0%" in (root.findtext(f"{SVG}desc") or "")


def test_columns_stack_the_series_of_a_day() -> None:
    days = ["11-22", "11-23", "11-24"]
    svg = columns("每日发卡", days, {"郑州": [10, 0, 30], "开封": [10, 5, 10]})
    root = _parse(svg)
    heights = _bar_heights(root)  # day by day, series by series
    assert heights[0] == pytest.approx(heights[1]) and heights[2] == 0
    assert heights[4] + heights[5] == pytest.approx(2 * (heights[0] + heights[1]))
    assert "郑州: 11-22 10, 11-24 30" in (root.findtext(f"{SVG}desc") or "")
    with pytest.raises(ValueError, match="series"):
        columns("x", days, {"郑州": [1, 2]})


def test_an_empty_chart_is_still_a_chart() -> None:
    for svg in (bars("空", []), hbars("空", []), columns("空", [], {})):
        assert _parse(svg).findtext(f"{SVG}desc") == "no data"


def test_a_month_of_days_for_eight_cities_stays_small() -> None:
    days = [f"11-{d:02d}" for d in range(1, 31)]
    svg = columns("每日发卡", days, {f"城市{n}": [float(d * n) for d in range(30)] for n in range(8)})
    assert len(svg.encode()) < 60_000


def test_an_axis_never_repeats_a_label() -> None:
    root = _parse(columns("每日发卡", ["11-24"], {"郑州": [1]}))
    labels = [t.text for t in root.iter(f"{SVG}text") if t.get("text-anchor") == "end"]
    assert labels == sorted(set(labels), key=labels.index) and labels[0] == "0" and labels[-1] == "1"
