package fraud

// Transaction is one synthetic card transaction: its raw fields, the
// probability the fraud process gave it and the label drawn from that
// probability. Encode turns it into a model's input row.
type Transaction struct {
	Amount            float64  // purchase amount, in the card's currency
	CardAvgAmount     float64  // the card's average amount over its history
	Category          Category // merchant category
	Hour              float64  // local time of day in hours, [0, 24)
	Weekend           bool     // made on a Saturday or Sunday
	DistanceKm        float64  // distance between the merchant (or IP) and the cardholder's home
	Velocity1h        int      // other transactions on the card in the last hour
	MinutesSinceLast  float64  // minutes since the card's previous transaction
	Spend24h          float64  // spend on the card in the previous 24 h, this one excluded
	Merchants24h      int      // distinct merchants in the previous 24 h
	DeviceAgeDays     float64  // how long this device or terminal token has been seen with the card
	AccountAgeDays    float64  // age of the card account
	FailedPIN         int      // failed PIN attempts just before this one (card present only)
	CreditUtilization float64  // share of the credit line in use, [0, 1]
	CardPresent       bool     // the card was read by a terminal
	CountryMismatch   bool     // the merchant's country is not the card's
	Online            bool     // an e-commerce transaction
	NewMerchant       bool     // the card's first purchase from this merchant
	AddressMismatch   bool     // billing and shipping address differ (online only)

	// FraudProb is the probability the latent fraud process (under the
	// generator's drift at the time) gave this transaction.
	FraudProb float64
	// Fraud is the label, drawn with probability FraudProb.
	Fraud bool
}
