"""The reviewer inbox web app and its JSON API (``create_app``), served by ``make review``."""

from orchestration_pipelines.review.web.app import create_app

__all__ = ["create_app"]
