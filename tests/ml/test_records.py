"""Records (objects keyed by column name) made rows of cells in the model's column order."""

from __future__ import annotations

import pytest

from ml.records import as_rows, has_records
from tensorq.core.errors import InvalidRequest

COLUMNS = ["age", "income", "city"]


def test_records_become_rows_in_column_order_a_missing_key_a_null_cell() -> None:
    given = [{"city": "nice", "age": 30, "income": 70.0}, {"income": "12"}, {}]
    assert as_rows(given, COLUMNS) == [[30, 70.0, "nice"], [None, "12", None], [None, None, None]]


def test_rows_without_a_record_are_returned_as_they_are() -> None:
    rows = [[30, 70.0, "nice"], [None, 1, "lyon"]]
    assert as_rows(rows, COLUMNS) is rows
    assert not has_records([30, 70.0, "nice"])
    assert not has_records(None)
    assert has_records([[1, 2, 3], {"age": 1}])


@pytest.mark.parametrize("rows", [[{"age": 1}, [1, 2, "x"]], [[1, 2, "x"], {"age": 1}], [30, {"age": 1}, "x"]])
def test_records_mixed_with_other_rows_are_refused_with_their_code(rows: list) -> None:
    with pytest.raises(InvalidRequest) as caught:
        as_rows(rows, COLUMNS, "background")
    assert caught.value.code == "mixed_input_forms"
    assert caught.value.details["field"] == "background"
    assert caught.value.details["row"] == next(i for i, row in enumerate(rows) if not isinstance(row, dict))


def test_unknown_keys_are_refused_naming_the_first_twenty_and_how_many_more() -> None:
    with pytest.raises(InvalidRequest) as caught:
        as_rows([{"age": 1, "town": "x"}, {"town": "y", "zip": 1}], COLUMNS)
    assert caught.value.code == "unknown_columns"
    assert "'town', 'zip'" in caught.value.message
    assert caught.value.details["unknown"] == ["town", "zip"]
    assert caught.value.details["columns"] == COLUMNS

    many = {f"k{i}" + "x" * 1000: i for i in range(25)}
    with pytest.raises(InvalidRequest) as caught:
        as_rows([many], COLUMNS)
    details = caught.value.details
    assert details["unknown_count"] == 25
    assert len(details["unknown"]) == 20
    assert all(len(name) == 200 for name in details["unknown"])
    assert caught.value.message.endswith("and 5 more are not feature columns of the model")
    assert len(caught.value.message) < 5000
