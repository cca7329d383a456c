"""A DAG for server/tests/airflow_roundtrip.rs: Airflow creates its runs and task instances."""

from datetime import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

with DAG("roundtrip", schedule=None, start_date=datetime(2024, 1, 1), catchup=False):
    EmptyOperator(task_id="extract") >> EmptyOperator(task_id="load")
