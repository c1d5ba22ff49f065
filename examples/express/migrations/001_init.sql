-- Subscribers, newsletter issues and the log of every email event, for the Express example.

CREATE TABLE subscribers (
  email text PRIMARY KEY CHECK (email = lower(email)),
  name text,
  locale text,
  status text NOT NULL CHECK (status IN ('pending', 'active', 'unsubscribed')),
  created_at timestamptz NOT NULL DEFAULT now(),
  confirmed_at timestamptz,
  unsubscribed_at timestamptz
);

-- The newsletter fan-out reads active subscribers in pages ordered by email.
CREATE INDEX subscribers_active_email ON subscribers (email) WHERE status = 'active';

CREATE TABLE issues (
  id text PRIMARY KEY,
  title text NOT NULL,
  body text NOT NULL,
  published_at timestamptz NOT NULL DEFAULT now()
);

-- One row per worker event (sent, retrying, failed, dead, suppressed) and per SES event
-- (delivery, bounce, complaint, open, click, ...) received through the webhook.
CREATE TABLE email_log (
  id bigserial PRIMARY KEY,
  source text NOT NULL CHECK (source IN ('worker', 'ses')),
  event text NOT NULL,
  job_id text,
  batch_id text,
  recipients text[] NOT NULL DEFAULT '{}',
  message_id text,
  detail text,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX email_log_job_id ON email_log (job_id);
