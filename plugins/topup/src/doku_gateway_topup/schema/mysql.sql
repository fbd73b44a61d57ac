-- doku-gateway-topup: the schema for MySQL and MariaDB.
--   python -m doku_gateway_topup schema mysql | mysql topup

-- One row per customer account; payment_code is the account's reusable VA number.
CREATE TABLE topup_accounts (
    payment_code VARCHAR(28)    PRIMARY KEY,       -- your BIN + the customer number, no spaces
    holder_name  VARCHAR(255)   NOT NULL,          -- shown on the ATM screen
    balance      DECIMAL(18, 2) NOT NULL DEFAULT 0,
    min_topup    DECIMAL(18, 2) NOT NULL DEFAULT 10000,
    max_topup    DECIMAL(18, 2) NOT NULL DEFAULT 5000000,
    email        VARCHAR(255),
    phone        VARCHAR(30),
    CHECK (min_topup > 0 AND min_topup <= max_topup)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- One row per credited payment; its key makes a repeated notification a no-op.
CREATE TABLE topup_credits (
    payment_request_id VARCHAR(128)   PRIMARY KEY,
    payment_code       VARCHAR(28)    NOT NULL,
    amount             DECIMAL(18, 2) NOT NULL,
    flags              VARCHAR(255)   NOT NULL,    -- e.g. 'below_min': credited all the same
    trx_id             VARCHAR(64),
    channel            VARCHAR(30),
    credited_at        TIMESTAMP(6)   NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    INDEX topup_credits_payment_code (payment_code),
    FOREIGN KEY (payment_code) REFERENCES topup_accounts (payment_code)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
