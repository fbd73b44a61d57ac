-- doku-gateway-topup: the schema for PostgreSQL.
--   python -m doku_gateway_topup schema postgresql | psql "$TOPUP_DSN"

-- One row per customer account; payment_code is the account's reusable VA number.
CREATE TABLE topup_accounts (
    payment_code VARCHAR(28)    PRIMARY KEY,       -- your BIN + the customer number, no spaces
    holder_name  VARCHAR(255)   NOT NULL,          -- shown on the ATM screen
    balance      NUMERIC(18, 2) NOT NULL DEFAULT 0,
    min_topup    NUMERIC(18, 2) NOT NULL DEFAULT 10000,
    max_topup    NUMERIC(18, 2) NOT NULL DEFAULT 5000000,
    email        VARCHAR(255),
    phone        VARCHAR(30),
    CHECK (min_topup > 0 AND min_topup <= max_topup)
);

-- One row per credited payment; its key makes a repeated notification a no-op.
CREATE TABLE topup_credits (
    payment_request_id VARCHAR(128)   PRIMARY KEY,
    payment_code       VARCHAR(28)    NOT NULL REFERENCES topup_accounts (payment_code),
    amount             NUMERIC(18, 2) NOT NULL,
    flags              VARCHAR(255)   NOT NULL,    -- e.g. 'below_min': credited all the same
    trx_id             VARCHAR(64),
    channel            VARCHAR(30),
    credited_at        TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX topup_credits_payment_code ON topup_credits (payment_code);
