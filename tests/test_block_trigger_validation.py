"""A block trigger names a chain the platform lists and a block interval; anything else
is refused at save time with a clear error."""

import pytest

from workflows.chains import parse_chains
from workflows.triggers import InvalidTrigger, validate_trigger

ANVIL = {"chain_id": 31337, "name": "anvil", "rpc_url": "http://127.0.0.1:8545", "confirmations": 2}


@pytest.fixture(autouse=True)
def one_chain(settings):
    settings.CHAINS = [ANVIL]


def errors_of(config: dict) -> dict[str, str]:
    with pytest.raises(InvalidTrigger) as refused:
        validate_trigger("block", config)
    return refused.value.errors


def test_a_block_trigger_on_a_listed_chain_is_accepted():
    assert validate_trigger("block", {"chain_id": 31337, "every_n_blocks": 5}) == {
        "chain_id": 31337,
        "every_n_blocks": 5,
    }


def test_a_chain_the_platform_does_not_list_is_refused_naming_the_listed_ones():
    error = errors_of({"chain_id": 1, "every_n_blocks": 5})["trigger_config.chain_id"]
    assert error == "chain 1 is not configured on this platform (listed: 31337 (anvil))"


@pytest.mark.parametrize("every", [0, -5, "5", 2.5, True, None, 10_000_001])
def test_a_block_interval_that_is_not_a_positive_integer_is_refused(every):
    assert (
        "must be an integer from 1 to"
        in errors_of({"chain_id": 31337, "every_n_blocks": every})["trigger_config.every_n_blocks"]
    )


def test_unknown_keys_are_refused():
    assert "unknown key" in errors_of({"chain_id": 31337, "every_n_blocks": 5, "rpc": "x"})["trigger_config.rpc"]


@pytest.mark.parametrize(
    ("chains", "says"),
    [
        ({"chain_id": 1}, "must be a JSON list"),
        ([{"chain_id": 0, "rpc_url": "http://x"}], "chain_id must be a positive integer"),
        ([{"chain_id": 1, "rpc_url": "ws://x"}], "rpc_url must be an http(s) URL"),
        ([{"chain_id": 1, "rpc_url": "http://x", "confirmations": -1}], "confirmations must be an integer"),
        ([{"chain_id": 1, "rpc_url": "http://x"}, {"chain_id": 1, "rpc_url": "http://y"}], "lists a chain_id twice"),
        ([{"chain_id": 1, "rpc_url": "http://x", "url": "y"}], "unknown keys: url"),
    ],
)
def test_a_malformed_chain_setting_is_a_configuration_error(chains, says):
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match=says.replace("(", r"\(").replace(")", r"\)")):
        parse_chains(chains)
