"""Identifiers shared by Block Kit builders and the handlers that answer them."""

# Buttons on the confirmation (value: launch id).
START_RUN = "launch_start"
CANCEL_RUN = "launch_cancel"

# Buttons on a result (value: run id).
FLAG_RUN = "result_flag"
SHOW_TRANSCRIPT = "result_transcript"
RUN_AGAIN = "result_run_again"

# Modals.
FLAG_MODAL = "flag_review"
TRANSCRIPT_MODAL = "transcript"
TRANSCRIPT_PAGE = "transcript_page"  # value: "<run id>:<page>"

# Input blocks of the flag modal (block_id; the action_id inside each is "value").
FLAG_TITLE = "flag_title"
FLAG_SEVERITY = "flag_severity"
FLAG_DESCRIPTION = "flag_description"
FLAG_TURN = "flag_turn"
INPUT_VALUE = "value"

# Every action_id a builder emits; `handlers.actions` registers a listener for each.
ACTIONS = (START_RUN, CANCEL_RUN, FLAG_RUN, SHOW_TRANSCRIPT, RUN_AGAIN, TRANSCRIPT_PAGE)
