"""Framework hooks: record what an agent framework does, as it does it, in a Veritrail log.

Each hook lives in its own module and needs its framework (an optional extra of the package);
importing :mod:`veritrail` or this package needs none of them:

- :mod:`veritrail.hooks.langchain`: ``VeritrailCallbackHandler``, a LangChain callback handler
  (``pip install 'veritrail[langchain]'``).
- :mod:`veritrail.hooks.autogen`: ``VeritrailInterventionHandler`` for an AutoGen
  (``autogen-core``) agent runtime, and ``VeritrailCodeExecutor`` for code execution
  (``pip install 'veritrail[autogen]'``).
- :mod:`veritrail.hooks.openai_agents`: ``VeritrailTracingProcessor`` for the OpenAI Agents
  SDK (``pip install 'veritrail[openai-agents]'``).

Every hook takes the :class:`~veritrail.Client` and the options of :class:`HookRecorder`
(the user principal, ``conversation_id``, ``session_id``, background or synchronous delivery,
strictness, ...). Prompts, responses, tool arguments and results and code always go into the
record as committed payloads, never into its metadata.
"""

from ._core import AGENT_HANDOFF, AGENT_INVOKED, HookError, HookRecorder, json_payload, to_jsonable

__all__ = ["AGENT_HANDOFF", "AGENT_INVOKED", "HookError", "HookRecorder", "json_payload", "to_jsonable"]
