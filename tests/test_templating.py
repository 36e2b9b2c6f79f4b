import pytest

from itinerary.templating import TemplateError, render


def test_it_renders_the_variables_and_tojson() -> None:
    out = render('{"job": {{ jobName|tojson }}}', {"jobName": 'say "hi"'})
    assert out == '{"job": "say \\"hi\\""}'


def test_it_refuses_attribute_escapes() -> None:
    with pytest.raises(TemplateError, match="sandbox|unsafe|failed"):
        render("{{ ''.__class__.__mro__[1].__subclasses__() }}", {})


def test_it_names_a_syntax_error() -> None:
    with pytest.raises(TemplateError, match="does not compile"):
        render("{{ jobName ", {"jobName": "x"})


def test_it_refuses_an_undefined_variable() -> None:
    with pytest.raises(TemplateError, match="undefined"):
        render("{{ nosuch }}", {})


def test_it_turns_a_runtime_error_into_a_template_error() -> None:
    with pytest.raises(TemplateError, match="ZeroDivisionError|division"):
        render("{{ 1 / 0 }}", {})
