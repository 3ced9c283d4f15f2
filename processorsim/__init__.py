"""A simulated card processor / ATM network: signs transaction events and delivers them to our
API's feed (`POST /api/processor/events`), redelivering on failure as a real processor would."""

from processorsim.feed import ProcessorFeed, card_authorization, card_clearing, processor_event

__all__ = ["ProcessorFeed", "card_authorization", "card_clearing", "processor_event"]
