"""The API's routes: thin handlers over service.api.jobs and the tables."""
