"""Identifiers shared by Block Kit builders and the handlers that answer them.

What a button or modal is about (its value or private_metadata) is a `bot.routing.Route`,
written with `routing.encode` and read with `routing.decode`; the notes below name its fields.
"""

# Buttons on the confirmation (route: launch_id).
START_RUN = "launch_start"
CANCEL_RUN = "launch_cancel"

# Buttons on a batch's confirmation (route: batch_id), and on a finished suite run's card.
START_BATCH = "batch_start"
CANCEL_BATCH = "batch_cancel"
BLESS_BATCH = "batch_bless"

# Buttons on a compare's confirmation (route: batch_id, holding the compare's id).
START_COMPARE = "compare_start"
CANCEL_COMPARE = "compare_cancel"

# Buttons asking before a suite is deleted (route: suite).
DELETE_SUITE = "suite_delete"
KEEP_SUITE = "suite_keep"

# Buttons on a request for approval of a spend over a cap (route: approval_id).
APPROVE_SPEND = "budget_approve"
DECLINE_SPEND = "budget_decline"

# Buttons on a result (route: run_id).
FLAG_RUN = "result_flag"
SHOW_TRANSCRIPT = "result_transcript"
RUN_AGAIN = "result_run_again"

# Modals (route: run_id).
FLAG_MODAL = "flag_review"
TRANSCRIPT_MODAL = "transcript"
TRANSCRIPT_PAGE = "transcript_page"  # a button in the transcript modal (route: run_id, page)

# The batch form (route: none; the channel is in private_metadata as a route-less JSON) and
# the suite import form; their input blocks.
BATCH_MODAL = "batch_form"
SUITE_IMPORT_MODAL = "suite_import"
BATCH_TARGET = "batch_target"
BATCH_DIRECTION = "batch_direction"
BATCH_STAGGER = "batch_stagger"
BATCH_REPEAT = "batch_repeat"
BATCH_PROMPTS = "batch_prompts"
SUITE_JSON = "suite_json"
SUITE_FILE = "suite_file"
SUITE_NAME = "suite_name"

# Input blocks of the flag modal (block_id; the action_id inside each is "value").
FLAG_TITLE = "flag_title"
FLAG_SEVERITY = "flag_severity"
FLAG_DESCRIPTION = "flag_description"
FLAG_TURN = "flag_turn"
INPUT_VALUE = "value"

# Every action_id a builder emits; `handlers.actions` registers a listener for each.
ACTIONS = (
    START_RUN,
    CANCEL_RUN,
    FLAG_RUN,
    SHOW_TRANSCRIPT,
    RUN_AGAIN,
    TRANSCRIPT_PAGE,
    START_BATCH,
    CANCEL_BATCH,
    BLESS_BATCH,
    DELETE_SUITE,
    KEEP_SUITE,
    START_COMPARE,
    CANCEL_COMPARE,
    APPROVE_SPEND,
    DECLINE_SPEND,
)
