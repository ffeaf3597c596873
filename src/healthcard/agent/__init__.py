"""The local reader agent (``healthcard agent``): a small HTTP service on ``127.0.0.1`` that
lets the clinic console and the kiosk pages in the browser reach the workstation's card
readers — PC/SC readers, or simulated cards from card images — and its SAM, the way hospital
B/S systems reach card readers.  docs/agent.md describes its API and its security model."""

from healthcard.agent.app import DEFAULT_ORIGINS, create_app
from healthcard.agent.readers import CardTray, PcscReader, SamSlot, SimulatedSlot
from healthcard.agent.service import Agent

__all__ = ["DEFAULT_ORIGINS", "Agent", "CardTray", "PcscReader", "SamSlot", "SimulatedSlot", "create_app"]
