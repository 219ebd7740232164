"""Built-in tasks, generated on the fly: ``dtmf`` (telephone keypad tones), ``actions`` (moving sprites
doing actions, with ``action_scenes`` for the varied look)."""
