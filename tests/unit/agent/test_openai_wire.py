"""The OpenAI adapter's wire format, without a server: a tool definition is exactly what
the SDK's own pydantic_function_tool makes of the argument model (the strict schema is
ours, in tools.base, since tools do not import openai)."""

from __future__ import annotations

import openai
import pytest

from agent.openai_model import wire_tool
from tools.catalog import TOOLS


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_a_tool_goes_out_as_the_sdk_would_define_it(name: str) -> None:
    tool = TOOLS[name]
    sdk = openai.pydantic_function_tool(tool.args, name=tool.name, description=tool.description)
    assert wire_tool(tool.definition()) == dict(sdk)
