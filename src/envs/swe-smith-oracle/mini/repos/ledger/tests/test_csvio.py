from ledger import parse_line


def test_plain_fields():
    assert parse_line("a,b,c") == ["a", "b", "c"]


def test_quoted_delimiter():
    assert parse_line('"a,b",c') == ["a,b", "c"]


def test_doubled_quotes():
    assert parse_line('"say ""hi"", ok",x') == ['say "hi", ok', "x"]


def test_custom_delimiter():
    assert parse_line("a;b", delimiter=";") == ["a", "b"]
