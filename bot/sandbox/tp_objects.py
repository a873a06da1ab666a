"""The sandbox organization's seeded agents and the JSON shapes of its API objects.

Objects use the superset shape that both the public docs and the official SDK accept.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

JSON = dict[str, Any]

CHARGE_MULTIPLIER = 2
RATE_CENTS_PER_MINUTE = {"spark": 8, "bolt": 10, "storm-base": 12}
DEMO_CALLER_NUMBER = "+14155550199"


@dataclass(frozen=True)
class Agent:
    """An agent the sandbox organization owns."""

    id: int
    name: str
    product: str
    number: str


@dataclass(frozen=True)
class Target:
    """What a test call dials: an agent directly or a phone number routed to an agent."""

    type: str
    id: int
    name: str
    agent: Agent


AGENTS = {
    12: Agent(12, "Support agent", "spark", "+14155550123"),
    13: Agent(13, "Support XL", "storm-base", "+14155550125"),
    14: Agent(14, "Sales agent", "bolt", "+14155550124"),
}
PHONE_NUMBERS = {34: Target("phone_number", 34, "Main line", AGENTS[12])}


def find_target(target_type: str, target_id: int) -> Target | None:
    """Return the seeded target, or None when the organization has no such id."""
    if target_type == "agent" and target_id in AGENTS:
        agent = AGENTS[target_id]
        return Target("agent", agent.id, agent.name, agent)
    if target_type == "phone_number":
        return PHONE_NUMBERS.get(target_id)
    return None


_LIST_FIELDS = (
    "integrations",
    "knowledge_bases",
    "knowledge_documents",
    "mcp_servers",
    "reusable_instructions",
    "tool_collision_warnings",
    "draft_additional_languages",
)


def agent_object(agent: Agent) -> JSON:
    """An agent as `GET /v1/agents/{id}` answers it, with every field the SDK requires."""
    seeded = "2026-01-05T09:00:00.000Z"
    return {
        "id": agent.id,
        "name": agent.name,
        "product": agent.product,
        "voice": "alloy",
        "prompt": f"You are {agent.name}, a helpful voice agent.",
        "created_at": seeded,
        "updated_at": seeded,
        "consent_disabled_reason": "",
        "has_draft": False,
        **{key: [] for key in _LIST_FIELDS},
        **_nulls(
            "draft_handoffs draft_max_call_duration_seconds draft_ring_duration_seconds",
            "draft_steps draft_updated_at",
        ),
    }


def phone_number_object(target: Target) -> JSON:
    """A phone number as `GET /v1/phone-numbers/{id}` answers it."""
    return {
        "id": target.id,
        "number": target.agent.number,
        "label": target.name,
        "inbound_agent_id": target.agent.id,
        "outbound_agent_id": target.agent.id,
        "status": "active",
        "source": "demo",
        "outbound_eligible": True,
        "voip_inbound_status": "untested",
        "voip_verification_status": "unverified",
        **_nulls(
            "outbound_ineligible_reason sms_capability_checked_at sms_capable",
            "voip_connection_id voip_inbound_result voip_inbound_test_method",
            "voip_inbound_tested_at voip_last_verified_at webhook_signing_secret webhook_url",
        ),
    }


def _nulls(*names: str) -> JSON:
    return dict.fromkeys(" ".join(names).split())


def iso(ts: float) -> str:
    """ISO 8601 UTC with milliseconds and a Z suffix."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def run_object(run_id: int, target: Target, body: JSON, batch_id: int | None, now: str) -> JSON:
    """A run in the superset shape both the docs and the SDK accept."""
    rate = RATE_CENTS_PER_MINUTE.get(target.agent.product, 8)
    return {
        "id": run_id,
        "target_type": target.type,
        "target_id": target.id,
        "target_name": target.name,
        "agent_name": target.agent.name,
        "direction": body.get("direction", "outbound"),
        "target_number": body.get("target_number") or "",
        "scenario_prompt": body.get("scenario_prompt") or "",
        "mode": body.get("mode", "bot"),
        "status": "queued",
        "charge_multiplier": CHARGE_MULTIPLIER,
        "estimated_cost_cents": rate * CHARGE_MULTIPLIER,
        "batch_id": batch_id,
        "error_message": "",
        **_nulls(
            "call_id sip_call_id duration_seconds recording_url grade requested_by_id",
            "started_at completed_at",
        ),
        "transcript": [],
        "metadata": {},
        "created_at": now,
        "updated_at": now,
    }


def batch_object(
    batch_id: int, body: JSON, prompts: list[str], run_ids: list[int], now: str
) -> JSON:
    """A batch in the superset shape; `run_ids` lists the child runs."""
    target = find_target(body["target_type"], body["target_id"])
    assert target is not None
    per_run = RATE_CENTS_PER_MINUTE.get(target.agent.product, 8) * CHARGE_MULTIPLIER
    return {
        "id": batch_id,
        "name": body.get("name") or "",
        "target_type": target.type,
        "target_id": target.id,
        "target_number": body.get("target_number") or "",
        "direction": body.get("direction", "outbound"),
        "run_count": len(run_ids),
        "stagger_seconds": body.get("stagger_seconds", 5),
        "scenario_prompts": prompts,
        "matrix_dimensions": {},
        "status": "in_progress",
        "total_runs": len(run_ids),
        "completed_runs": 0,
        "failed_runs": 0,
        "run_ids": run_ids,
        "estimated_cost_cents": per_run * len(run_ids),
        "estimated_minutes": len(run_ids),
        "error_message": "",
        **_nulls("requested_by_id completed_at"),
        "started_at": now,
        "created_at": now,
        "updated_at": now,
    }


def call_object(call_id: int, run: JSON, target: Target, now: str) -> JSON:
    """An in-progress test call in the superset shape."""
    outbound = run["direction"] == "outbound"
    caller = run["target_number"] or DEMO_CALLER_NUMBER
    agent = target.agent
    return {
        "call_id": call_id,
        "agent_id": agent.id,
        **_nulls(
            "agent_variant_id agent_variant_label end_time duration_seconds recording_url",
            "recording_retention_notice billable_minutes billing_total_cents billed_at",
            "grade_score grade_updated_at call_outcome goal_achievement goal_reasoning",
            "cloud_run_execution_name collected_values extracted_data livekit_room_sid",
            "steps_trace transfer_bridge_kind transfer_bridge_seconds",
            "transfer_bridge_total_cents transfer_outcome transfer_sip_status",
        ),
        "direction": run["direction"],
        "from_number": caller if outbound else agent.number,
        "to_number": agent.number if outbound else caller,
        "start_time": now,
        "status": "in_progress",
        "end_reason": "",
        "recording_mode": "recording",
        "recording_policy": {},
        "recording_started_at": now,
        "is_test_call": True,
        "is_simulation": False,
        "is_scenario_call": False,
        "product": agent.product,
        "voice": "en-US-James1",
        "locale": "en-US",
        "thinking_level": "",
        "grade_status": "pending",
        "issue_count": 0,
        "critical_issue_count": 0,
        "consent_evidence": {},
        "livekit_room_name": f"call-{call_id}",
        "outbound_dial_state": "answered",
        "prompt_snapshot": "",
        "sip_answered_at": now,
        "tool_snapshot": [],
        "transfer_destination": "",
        "unresolved_variables": [],
        "variables": {},
    }


def issue_object(issue_id: int, call: JSON, body: JSON, now: str) -> JSON:
    """A user-filed issue report; `body` has been validated and defaulted."""
    turn = body["failing_turn_index"]
    fields = ("title", "description", "severity", "source", "timestamp_seconds", "metadata")
    return {
        "id": issue_id,
        "call_id": call["call_id"],
        "agent_id": call["agent_id"],
        "call_start_time": call["start_time"],
        **{name: body[name] for name in fields},
        "status": "open",
        "failing_turn_index": turn,
        "relevant_turn_indices": [] if turn is None else [turn],
        "detected_issue_ref": body.get("detected_issue_ref"),
        **dict.fromkeys(("evidence", "what_went_wrong", "suggested_fix"), ""),
        **_nulls("reported_by_id cluster_id"),
        "linked_test_cases": [],
        "regression_guarded": False,
        "trace_id": str(uuid.uuid4()),
        "created_at": now,
        "updated_at": now,
    }


def secret_hint(secret: str) -> str:
    """How ThunderPhone shows a webhook secret after creating it: `whsec_…` and its last 6."""
    return f"whsec_…{secret[-6:]}"


def endpoint_object(endpoint_id: str, body: JSON, secret: str, now: str) -> JSON:
    """A webhook endpoint as `GET /v1/developer/webhook-endpoints` lists it (never the secret;
    the create answer adds it, once)."""
    agent = AGENTS.get(body["agent_id"]) if body.get("agent_id") is not None else None
    return {
        "id": endpoint_id,
        "label": body["label"],
        "url": body["url"],
        "events": list(body["events"]),
        "status": body["status"],
        "agent_id": agent.id if agent else None,
        "agent_name": agent.name if agent else None,
        "secret_hint": secret_hint(secret),
        "created_at": now,
        "updated_at": now,
    }
