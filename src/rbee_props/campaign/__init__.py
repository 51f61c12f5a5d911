"""Overnight campaigns: every state machine and fuzz suite in rounds, in N worker processes.

A campaign is what rbee engineers leave running overnight (``rbee-props campaign``). Each worker
process owns a stack of its own (faults and resets of one machine must not disturb another's
examples) and goes round the suites in time slices; all workers share one Hypothesis example
database and one findings directory, where each finding is claimed once (:mod:`.claims`). The
parent (:mod:`.supervisor`) adds up what the workers report, restarts a worker that crashed,
stops them all at the deadline or on Ctrl-C, and writes ``report.html`` and ``junit.xml``.
A campaign started again with the same ``--out`` resumes: earlier findings are replayed first.
"""

from rbee_props.campaign.plan import DEFAULT_SUITES, CampaignPlan, parse_suites
from rbee_props.campaign.supervisor import CampaignState, run_campaign

__all__ = ["DEFAULT_SUITES", "CampaignPlan", "CampaignState", "parse_suites", "run_campaign"]
