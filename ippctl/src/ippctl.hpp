#pragma once

namespace ipp::ctl {

/// Runs the ippctl command line. Exit codes: 0 success, 1 a remote error (message on
/// stderr), 2 a usage error, 3 no controller or a connection problem, 130 stopped by Ctrl-C
/// (after cancelling the work the command submitted).
int run(int argc, char** argv);

}  // namespace ipp::ctl
