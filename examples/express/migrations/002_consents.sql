-- Advertising consents (정보통신망법 제50조, docs/korea.md): one row per address, its current state.
-- A withdrawal keeps the row (withdrawn_at); a new consent after it starts a new period.

CREATE TABLE ad_consents (
  address text PRIMARY KEY CHECK (address = lower(address)),
  consented_at timestamptz NOT NULL,
  withdrawn_at timestamptz,
  -- How and where it was given (a form, a settings page), and which wording the form showed.
  method text NOT NULL,
  source text NOT NULL,
  consent_text_version text NOT NULL,
  -- The last two-yearly reminder (제50조 제8항); NULL until the first.
  last_reminder_at timestamptz,
  locale text,
  CHECK (withdrawn_at IS NULL OR withdrawn_at >= consented_at)
);

-- The reminder run pages through current consents ordered by address.
CREATE INDEX ad_consents_current ON ad_consents (address) WHERE withdrawn_at IS NULL;
