"""A submission's METADATA numbers must be plausible, not merely numbers (issue 19, hole 7).

``params=1e308`` passed the contract and would sit on the board as a real parameter count.
"""

from __future__ import annotations

import math

import pytest

from imagenet_hard.score.contract import ContractError, check_metadata


@pytest.mark.parametrize("params", [1e308, 10**14, 10**400, math.inf, -math.inf, math.nan, -5, 0, 0.5,
                                    25_557_032.5, True, "25M", None, [1]])
def test_implausible_parameter_counts_are_refused_in_one_sentence(params):
    with pytest.raises(ContractError) as err:
        check_metadata({"name": "m", "params": params})
    message = str(err.value)
    assert "\n" not in message and "params" in message


@pytest.mark.parametrize("params", [1, 4_652_008, 25_557_032, 4.8e8, 10**13])
def test_real_parameter_counts_pass(params):
    assert check_metadata({"params": params})["params"] == params


@pytest.mark.parametrize("resolution", [1e308, 10**9, 0, 224.5, True])
def test_implausible_resolutions_are_refused(resolution):
    with pytest.raises(ContractError, match=r"METADATA\['resolution'\]"):
        check_metadata({"resolution": resolution})


def test_the_message_says_what_is_allowed():
    with pytest.raises(ContractError, match=r"METADATA\['params'\]: params must be a whole number "
                                            r"of parameters from 1 to 10,000,000,000,000, got 1e\+308"):
        check_metadata({"params": 1e308})
