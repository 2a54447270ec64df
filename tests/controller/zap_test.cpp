// The controller's ZAP handler: which key may connect where.
#include <gtest/gtest.h>

#include "ipp/error.hpp"
#include "ipp/net/curve.hpp"
#include "zap.hpp"

namespace ipp::ctrl {
namespace {

TEST(ZapHandler, ClientsKeysWhereClientsConnectEnginesKeysWhereEnginesDoEitherToRegister) {
  zmq::context_t ctx;
  const auto clients = net::CurvePair::generate();
  const auto engines = net::CurvePair::generate();
  const auto stranger = net::CurvePair::generate();
  const ZapHandler zap({&ctx}, clients.public_key, engines.public_key);
  const auto client = net::curve_key_bytes(clients.public_key);
  const auto engine = net::curve_key_bytes(engines.public_key);
  const auto other = net::curve_key_bytes(stranger.public_key);
  EXPECT_EQ(zap.decide(ZapHandler::kClients, client), "client");
  EXPECT_EQ(zap.decide(ZapHandler::kClients, engine), "");
  EXPECT_EQ(zap.decide(ZapHandler::kEngines, engine), "engine");
  EXPECT_EQ(zap.decide(ZapHandler::kEngines, client), "");
  EXPECT_EQ(zap.decide(ZapHandler::kRegistration, client), "client");
  EXPECT_EQ(zap.decide(ZapHandler::kRegistration, engine), "engine");
  for (const char* domain : {ZapHandler::kClients, ZapHandler::kEngines, ZapHandler::kRegistration})
    EXPECT_EQ(zap.decide(domain, other), "") << domain;
  EXPECT_EQ(zap.decide("", client), "") << "a socket of no domain of ours";
}

TEST(ZapHandler, AKeyThatIsNoKeyIsAClearError) {
  zmq::context_t ctx;
  const std::string engines = net::CurvePair::generate().public_key;
  EXPECT_THROW((void)ZapHandler({&ctx}, "not a key", engines), ConnectionError);
}

}  // namespace
}  // namespace ipp::ctrl
