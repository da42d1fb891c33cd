import pytest

from failures.errors import InvalidDefinition
from workflows.definitions import validate_definition


def errors_of(definition) -> dict[str, str]:
    with pytest.raises(InvalidDefinition) as raised:
        validate_definition(definition)
    return raised.value.errors


def transform(step_id: str, output="x", **extra) -> dict:
    return {"id": step_id, "action": "transform", "config": {"output": output}, **extra}


def test_a_valid_definition_comes_back_normalised_with_an_empty_config_filled_in():
    definition = {
        "steps": [
            {"id": "fetch", "action": "http_request", "config": {"url": "https://api.example.com/x"}},
            {"id": "wait", "action": "delay", "config": {"seconds": 0}, "next": "end"},
        ]
    }
    assert validate_definition(definition) == definition
    assert validate_definition({"steps": [{"id": "t", "action": "transform", "config": {"output": 1}}]})["steps"][0][
        "config"
    ] == {"output": 1}


def test_a_definition_that_is_not_an_object_is_refused():
    assert list(errors_of(["steps"])) == ["definition"]


@pytest.mark.parametrize(
    ("definition", "message"),
    [({}, "is required"), ({"steps": []}, "at least one step"), ({"steps": "fetch"}, "must be a list")],
)
def test_missing_empty_or_malformed_steps_are_refused(definition, message):
    assert message in errors_of(definition)["steps"]


def test_more_steps_than_the_platform_allows_are_refused(settings):
    settings.MAX_STEPS_PER_WORKFLOW = 2
    errors = errors_of({"steps": [transform("a"), transform("b"), transform("c")]})
    assert errors == {"steps": "at most 2 steps are allowed, got 3"}


def test_a_duplicate_id_names_the_step_that_has_it_first():
    errors = errors_of({"steps": [transform("a"), transform("b"), transform("a")]})
    assert errors == {"steps[2].id": "duplicate id 'a' (also steps[0])"}


@pytest.mark.parametrize("bad_id", ["1abc", "has space", "end", "", 5, "x" * 65])
def test_a_badly_formed_step_id_is_refused(bad_id):
    assert "steps[0].id" in errors_of({"steps": [transform(bad_id)]})


def test_an_unknown_action_lists_the_known_ones():
    errors = errors_of({"steps": [{"id": "a", "action": "shell", "config": {}}]})
    assert errors["steps[0].action"] == (
        "unknown action 'shell'; known actions: condition, delay, http_request, python, transform"
    )


@pytest.mark.parametrize(
    ("step", "key"),
    [
        ({"action": "http_request", "config": {"url": "ftp://example.com/file"}}, "steps[1].config.url"),
        ({"action": "http_request", "config": {}}, "steps[1].config.url"),
        ({"action": "http_request", "config": {"url": "https://x.io", "method": "FETCH"}}, "steps[1].config.method"),
        ({"action": "http_request", "config": {"url": "https://x.io", "timeout": 0}}, "steps[1].config.timeout"),
        ({"action": "http_request", "config": {"url": "https://x.io", "headers": {"Host": "a"}}}, None),
        ({"action": "http_request", "config": {"url": "https://x.io", "expect_status": [700]}}, None),
        ({"action": "condition", "config": {"left": 1, "op": "approx", "right": 1}}, "steps[1].config.op"),
        ({"action": "condition", "config": {"left": 1, "op": "eq"}}, "steps[1].config.right"),
        ({"action": "delay", "config": {"seconds": -1}}, "steps[1].config.seconds"),
        ({"action": "python", "config": {"callable": "os.system"}}, "steps[1].config.callable"),
        ({"action": "transform", "config": {}}, "steps[1].config.output"),
        ({"action": "transform", "config": {"output": 1, "outptu": 2}}, "steps[1].config.outptu"),
    ],
)
def test_each_action_validates_its_own_config_under_the_steps_key(step, key):
    errors = errors_of({"steps": [transform("first"), {"id": "second", **step}]})
    assert len(errors) == 1
    (found,) = errors
    assert found.startswith("steps[1].config.")
    if key is not None:
        assert found == key


def test_a_refused_python_callable_message_lists_the_allowed_ones(settings):
    settings.PYTHON_CALLABLE_ALLOWLIST = ["workflows.actions.examples.add_numbers"]
    errors = errors_of({"steps": [{"id": "p", "action": "python", "config": {"callable": "os.system"}}]})
    assert errors["steps[0].config.callable"] == (
        "must be one of the allowed callables: workflows.actions.examples.add_numbers"
    )


def test_a_jump_to_a_step_that_does_not_exist_is_refused():
    errors = errors_of({"steps": [transform("a", next="nowhere"), transform("b")]})
    assert errors == {"steps[0].next": "no step has the id 'nowhere'"}


@pytest.mark.parametrize("target", ["a", "b"])
def test_backward_and_self_jumps_are_refused(target):
    errors = errors_of({"steps": [transform("a"), transform("b", next=target), transform("c")]})
    assert "must jump forward" in errors["steps[1].next"]


def test_condition_branches_must_also_jump_forward():
    condition = {"left": 1, "op": "eq", "right": 1, "then": "a", "else": "missing"}
    errors = errors_of({"steps": [transform("a"), {"id": "c", "action": "condition", "config": condition}]})
    assert "must jump forward" in errors["steps[1].config.then"]
    assert errors["steps[1].config.else"] == "no step has the id 'missing'"


def test_condition_branches_to_later_steps_or_to_end_are_accepted():
    condition = {"left": "{{ input.x }}", "op": "truthy", "then": "yes", "else": "end"}
    definition = {"steps": [{"id": "c", "action": "condition", "config": condition}, transform("no"), transform("yes")]}
    assert validate_definition(definition)["steps"][0]["config"]["then"] == "yes"


def test_a_template_that_does_not_parse_is_reported_at_its_field():
    config = {"url": "https://x.io", "headers": {"X-Token": "{{ secrets.TOKEN"}}
    errors = errors_of({"steps": [{"id": "a", "action": "http_request", "config": config}]})
    assert list(errors) == ["steps[0].config.headers.X-Token"]
    assert errors["steps[0].config.headers.X-Token"].startswith("template does not parse")


def test_a_template_inside_a_list_is_reported_with_its_index():
    errors = errors_of({"steps": [transform("a", output={"items": ["ok", "{{ input.x + 1 }}"]})]})
    assert list(errors) == ["steps[0].config.output.items[1]"]


@pytest.mark.parametrize("referenced", ["b", "a", "ghost"])
def test_a_template_may_only_reference_a_step_that_comes_earlier(referenced):
    later = transform("b")
    step = transform("a", output=f"{{{{ steps.{referenced}.output }}}}")
    errors = errors_of({"steps": [step, later]})
    assert "does not come earlier" in errors["steps[0].config.output"]


def test_a_template_referencing_an_earlier_step_is_accepted():
    steps = [transform("a", output={"n": 1}), transform("b", output="{{ steps.a.output.n }}")]
    assert validate_definition({"steps": steps})["steps"][1]["config"]["output"] == "{{ steps.a.output.n }}"


@pytest.mark.parametrize(
    "template",
    ["{{ env.HOME }}", "{{ steps.a.result }}", "{{ secrets }}", "{{ secrets.A.B }}", "{{ run.claim_token }}"],
)
def test_a_template_with_an_unknown_root_or_shape_is_refused(template):
    errors = errors_of({"steps": [transform("a"), transform("b", output=template)]})
    assert list(errors) == ["steps[1].config.output"]


def test_unknown_fields_of_a_step_or_the_definition_are_refused():
    errors = errors_of({"steps": [{**transform("a"), "nxt": "b"}, transform("b")], "version": 2})
    assert set(errors) == {"steps[0].nxt", "version"}


def test_every_problem_is_reported_at_once():
    errors = errors_of(
        {
            "steps": [
                {"id": "fetch", "action": "http_request", "config": {"url": "not a url"}},
                {"id": "fetch", "action": "teleport"},
                "not a step",
                {"id": "t", "action": "transform", "config": {"output": "{{ steps.later.output }}"}, "next": "fetch"},
            ]
        }
    )
    assert set(errors) == {
        "steps[0].config.url",
        "steps[1].id",
        "steps[1].action",
        "steps[2]",
        "steps[3].config.output",
        "steps[3].next",
    }


def test_invalid_definition_is_the_users_error():
    errors = InvalidDefinition({"steps": "is required"})
    assert errors.error_type == "user"
    assert str(errors) == "steps: is required"


@pytest.mark.django_db
def test_saving_a_workflow_with_an_invalid_definition_is_refused_and_nothing_is_stored():
    from tenancy.models import Organization
    from workflows.models import Workflow

    organization = Organization.objects.create(name="Acme", slug="acme")
    workflow = Workflow(organization=organization, name="broken", definition={"steps": [transform("a", next="a")]})
    with pytest.raises(InvalidDefinition) as raised:
        workflow.save()
    assert "steps[0].next" in raised.value.errors
    assert not Workflow.objects.filter(name="broken").exists()
