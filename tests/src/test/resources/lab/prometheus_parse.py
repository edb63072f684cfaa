#!/usr/bin/python3
"""prometheus_parse.py < exposition text: parses it with the Prometheus client's own parser
(python3-prometheus-client, prometheus_client.parser.text_string_to_metric_families) and prints every
sample as JSON: [{"family", "type", "name", "labels", "value"}, ...]. A parse error exits non-zero."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append({"family": family.name, "type": family.type, "name": s.name, "labels": s.labels, "value": s.value})
print(json.dumps(out))
