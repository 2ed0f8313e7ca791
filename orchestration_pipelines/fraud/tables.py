"""The fraud workflow's warehouse tables that several steps read or write, named once."""

STAGING_TABLE = "fraud.decisions_staging"  # per-run staged decisions, judged by the blocking checks
PUBLISHED_TABLE = "fraud.decisions"  # what readers see; written only by the publish transaction
HISTORY_TABLE = "fraud.labelled_history"
