"""Identifiers shared by Block Kit builders and the handlers that answer them.

What a button or modal is about (its value or private_metadata) is a `bot.routing.Route`,
written with `routing.encode` and read with `routing.decode`; the notes below name its fields.
"""

# Buttons on the confirmation (route: launch_id).
START_RUN = "launch_start"
CANCEL_RUN = "launch_cancel"

# Buttons on a result (route: run_id).
FLAG_RUN = "result_flag"
SHOW_TRANSCRIPT = "result_transcript"
RUN_AGAIN = "result_run_again"

# Modals (route: run_id).
FLAG_MODAL = "flag_review"
TRANSCRIPT_MODAL = "transcript"
TRANSCRIPT_PAGE = "transcript_page"  # a button in the transcript modal (route: run_id, page)

# Input blocks of the flag modal (block_id; the action_id inside each is "value").
FLAG_TITLE = "flag_title"
FLAG_SEVERITY = "flag_severity"
FLAG_DESCRIPTION = "flag_description"
FLAG_TURN = "flag_turn"
INPUT_VALUE = "value"

# Every action_id a builder emits; `handlers.actions` registers a listener for each.
ACTIONS = (START_RUN, CANCEL_RUN, FLAG_RUN, SHOW_TRANSCRIPT, RUN_AGAIN, TRANSCRIPT_PAGE)
