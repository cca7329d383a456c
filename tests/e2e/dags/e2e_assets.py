"""An asset-producing task, and a DAG scheduled on that asset reading its triggering events."""

from __future__ import annotations

import pendulum

from airflow.sdk import Asset, dag, task

E2E_ASSET = Asset(uri="e2e://produced/table", name="e2e_table")


@dag(dag_id="e2e_producer", schedule=None, start_date=pendulum.datetime(2024, 1, 1), catchup=False)
def e2e_producer():
    @task(outlets=[E2E_ASSET])
    def produce(outlet_events=None):
        outlet_events[E2E_ASSET].extra = {"rows": 42, "big": 2**64 - 2}
        return "produced"

    produce()


@dag(dag_id="e2e_consumer", schedule=[E2E_ASSET], start_date=pendulum.datetime(2024, 1, 1), catchup=False)
def e2e_consumer():
    @task(inlets=[E2E_ASSET])
    def consume(triggering_asset_events=None):
        events = triggering_asset_events[E2E_ASSET]
        return [e.extra for e in events]

    consume()


e2e_producer()
e2e_consumer()
