"""The study flow without Qt: participant pseudonyms, the plan of turns, side
randomisation, the LLM calls of a turn and what is written into the session file."""
