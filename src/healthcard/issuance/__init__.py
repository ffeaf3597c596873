"""The card management system (卡管) and the key centre: what issues SAMs and cards."""

from healthcard.issuance.keycentre import KeyCentre, SamRequest, sam_masters, terminal_number

__all__ = ["KeyCentre", "SamRequest", "sam_masters", "terminal_number"]
