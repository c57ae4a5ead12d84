"""Folding the change log into grid cells (layers.changes.fold_cells)."""

from __future__ import annotations

from layers.changes import Change, ChangeLog, cell_extent, fold_cells


def test_each_change_is_covered_by_its_cells_and_tiles_elsewhere_are_not():
    rows = [(100, [126.97, 37.55, 126.9705, 37.5505], 1.0),      # a short main
            (105, [126.97, 37.55, 126.9705, 37.5505], 2.0),      # edited again
            (101, [127.05, 37.59, 127.051, 37.591], 3.0),
            (102, None, 4.0)]                                   # somewhere
    cells = fold_cells(rows)
    assert cells[None] == (102, 4.0)
    boxes = {c: cell_extent(c) for c in cells if c is not None}
    for _, extent, _ in rows[:3]:
        assert any(b[0] <= extent[0] <= b[2] and b[1] <= extent[1] <= b[3] for b in boxes.values())
    (first,) = [c for c, b in boxes.items() if b[0] <= 126.97 <= b[2] and b[1] <= 37.55 <= b[3]]
    assert cells[first] == (105, 2.0)                          # the latest of what it folds
    # a tile under a folded change changes signature; one away from all does not
    before = ChangeLog([Change(100, 100, tuple(rows[0][1]))])
    after = ChangeLog([Change(900, 105, tuple(boxes[first]))])
    near = (126.9701, 37.5501, 126.9702, 37.5502)
    far = (126.80, 37.40, 126.81, 37.41)
    assert before.signature(near) != after.signature(near) and after.signature(near)
    assert before.signature(far) == after.signature(far) == ""


def test_coarser_cells_hold_more():
    rows = [(i, [126.9 + i * 0.03, 37.5, 126.9 + i * 0.03 + 0.001, 37.501], float(i)) for i in range(10)]
    assert len(fold_cells(rows, 14)) > len(fold_cells(rows, 10)) >= 1
