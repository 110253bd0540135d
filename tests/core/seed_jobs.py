"""The three job JSONs of the product brief (seed 000), verbatim."""

AIRFLOW_DAG = """{
    "name": "Nightly ETL - production to warehouse",
    "kind": "cron",
    "schedule": {
      "cron": "0 1 * * *"
    },
    "request": {
      "url": "https://airflow.yourcompany.com/api/v1/dags/nightly_etl/dagRuns",
      "method": "POST",
      "headers": {
        "Authorization": "secret://airflow-api-key",
        "Content-Type": "application/json"
      },
      "body": {
        "conf": {
          "source": "production",
          "target": "warehouse",
          "mode": "incremental"
        }
      },
      "timeout_seconds": 30
    },
    "retry_policy": {
      "max_attempts": 3,
      "retry_on_statuses": [500, 502, 503]
    }
  }"""

DBT_CLOUD = """{
  "name": "dbt Cloud - nightly model refresh",
  "kind": "cron",
  "schedule": { "cron": "0 3 * * *" },
  "request": {
    "url": "https://cloud.getdbt.com/api/v2/accounts/ACCOUNT_ID/jobs/JOB_ID/run/",
    "method": "POST",
    "headers": {
      "Authorization": "secret://dbt-cloud-token",
      "Content-Type": "application/json"
    },
    "body": { "cause": "Triggered by TrigRun nightly schedule" }
  }
}"""

ML_RETRAIN = """{
  "name": "ML model retrain - recommendation engine",
  "kind": "cron",
  "schedule": { "cron": "0 2 * * 0" },
  "request": {
    "url": "https://ml.yourcompany.com/api/train",
    "method": "POST",
    "headers": { "Authorization": "secret://ml-api-key" },
    "body": {
      "model": "recommendations-v3",
      "dataset": "last_7_days",
      "deploy_on_success": true
    }
  }
}"""

SEEDS = {"airflow": AIRFLOW_DAG, "dbt_cloud": DBT_CLOUD, "webhook": ML_RETRAIN}
