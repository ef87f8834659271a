"""The service monitor of the Wikimedia enterprise export API, as a package.

Run it as `python scripts/service_monitor.py` (the cron command); the manual is docs/monitor.md.
It imports nothing from `service/`: only `requests`, `python-dotenv` (for the project's `.env`)
and the standard library, so it can watch the service from anywhere.

Modules, by concern:
    exit_codes   the process exit statuses (part of the interface)
    units        milliseconds, numbers and RFC 3339 times as the outputs write them
    redact       keeping every trace of the API key out of every output
    http_attempt one GET under a hard deadline, with a watchdog for servers that drip
    reasons      the fixed list of failure reasons and how exceptions map onto them
    checks       what is checked and how one attempt is judged
    config       flags, MONITOR_* variables and the project's .env
    runner       the concurrent run under the run deadline, with retries
    trend        the trend over earlier reports of the same target
    report       the JSON report (schema in monitoring/report.schema.json) and its files
    junit        JUnit XML
    prometheus   node_exporter textfile output
    cli          main(): wires the above together
"""
