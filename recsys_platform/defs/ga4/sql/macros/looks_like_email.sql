-- macro looks_like_email(value)
-- An e-mail address where an id belongs (some sites log users in with their e-mail as GA4 user_id).
REGEXP_CONTAINS(value, r'^[^@\s]+@[^@\s]+\.[^@\s]+$')
