"""Quality and audit for QA staff (issue E): turnaround and SLA figures derived from the change
log — never stored twice: ``qa_turnaround`` is a cache of the events, rebuilt by
``yunying qa recompute`` and refreshed from the log's cursor before every query."""
