"""Structured JSON logs (Powertools Logger): one logger for the function, request id injected by the entry."""

from __future__ import annotations

from aws_lambda_powertools import Logger

SERVICE = "midas-depth"
logger = Logger(service=SERVICE)
