import pytest

from failures.classifier import ORIGIN_STEP, classify
from failures.errors import TemplateError
from workflows.templates import build_context, parse, render


@pytest.fixture
def context():
    return build_context(
        input={"order": {"id": 42, "paid": True, "note": None, "tags": ["a", "b"]}, "name": "Ada", "my key": 7},
        steps={"fetch": {"status": 200, "body": {"items": [{"name": "first"}, {"name": "second"}]}}},
        secrets={"API_KEY": "s3cr3t"},
        run={"id": "run-1", "workflow_id": 3, "organization_id": 9},
    )


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ input.order.id }}", 42),
        ("{{ input.order.paid }}", True),
        ("{{ input.order.note }}", None),
        ("{{ input.order.tags }}", ["a", "b"]),
        ("{{input.order}}", {"id": 42, "paid": True, "note": None, "tags": ["a", "b"]}),
    ],
)
def test_a_whole_string_template_keeps_the_json_type_of_its_value(context, template, expected):
    assert render(template, context) == expected


def test_embedded_templates_are_stringified_with_json_for_non_strings(context):
    text = "id={{ input.order.id }} paid={{ input.order.paid }} tags={{ input.order.tags }} by {{ input.name }}"
    assert render(text, context) == 'id=42 paid=true tags=["a","b"] by Ada'


def test_step_outputs_are_reached_by_dotted_paths_and_list_indices(context):
    assert render("{{ steps.fetch.output.body.items[1].name }}", context) == "second"
    assert render("{{ steps.fetch.output.body.items.0.name }}", context) == "first"


def test_quoted_keys_reach_keys_that_are_not_plain_names(context):
    assert render("{{ input['my key'] }}", context) == 7
    assert render('{{ input["my key"] }}', context) == 7


def test_rendering_goes_through_nested_dicts_and_lists_and_leaves_keys_alone(context):
    value = {"{{ input.name }}": [{"who": "{{ input.name }}"}, 1, None, "plain"]}
    assert render(value, context) == {"{{ input.name }}": [{"who": "Ada"}, 1, None, "plain"]}


def test_secrets_and_run_fields_are_available_to_templates(context):
    assert render("Bearer {{ secrets.API_KEY }}", context) == "Bearer s3cr3t"
    assert render("{{ run.id }}/{{ run.workflow_id }}", context) == "run-1/3"


def test_a_missing_key_raises_a_template_error_naming_the_path(context):
    with pytest.raises(TemplateError) as raised:
        render("{{ input.order.customer.email }}", context)
    assert "input.order.customer.email" in raised.value.message
    assert "input.order has no key 'customer'" in raised.value.message


def test_an_index_past_the_end_says_how_long_the_list_is(context):
    with pytest.raises(TemplateError, match=r"has 2 items, no index 5"):
        render("{{ steps.fetch.output.body.items[5] }}", context)


def test_a_template_error_is_classified_as_the_users_error(context):
    with pytest.raises(TemplateError) as raised:
        render("{{ input.nope }}", context)
    classification = classify(raised.value, ORIGIN_STEP)
    assert classification.error_type == "user"
    assert classification.code == ""


def test_an_undefined_secret_is_named_without_revealing_defined_values(context):
    with pytest.raises(TemplateError) as raised:
        render("{{ secrets.OTHER }}", context)
    assert "OTHER" in raised.value.message
    assert "s3cr3t" not in raised.value.message


def test_a_step_that_did_not_run_has_no_output(context):
    with pytest.raises(TemplateError, match="step 'notify' has not run"):
        render("{{ steps.notify.output }}", context)


@pytest.mark.parametrize(
    "text",
    [
        "{{ input.x",
        "{{ }}",
        "{{ input.x + 1 }}",
        "{{ input.x|upper }}",
        "{{ __import__('os').system('true') }}",
        "{{ input.items[-1] }}",
        "{{ 1 }}",
    ],
)
def test_anything_but_a_plain_dotted_path_does_not_parse(text):
    with pytest.raises(TemplateError):
        parse(text)


def test_values_put_in_by_a_template_are_not_rendered_again(context):
    context["input"]["name"] = "{{ secrets.API_KEY }}"
    assert render("hello {{ input.name }}", context) == "hello {{ secrets.API_KEY }}"
    assert render("{{ input.name }}", context) == "{{ secrets.API_KEY }}"


def test_strings_without_templates_are_returned_unchanged(context):
    assert render("no braces here } {", context) == "no braces here } {"
