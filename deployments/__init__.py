"""How sync runs are scheduled and served; deployment names shared by the API and prefect.yaml."""
