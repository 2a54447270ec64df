// The one exported entry point of an ipp plugin. ipp_add_plugin() compiles this file into
// every plugin with IPP_PLUGIN_NAME and IPP_PLUGIN_VERSION set; plugin authors never see it.

#include <boost/dll/alias.hpp>

#include <ipp/plugin.hpp>

#ifndef IPP_PLUGIN_NAME
#error "IPP_PLUGIN_NAME must be defined (ipp_add_plugin does this)"
#endif
#ifndef IPP_PLUGIN_VERSION
#define IPP_PLUGIN_VERSION "0.0.0"
#endif
#ifndef IPP_PLUGIN_ABI_VERSION
#define IPP_PLUGIN_ABI_VERSION IPP_ABI_VERSION
#endif

namespace ipp_plugin_entry {
const ipp_manifest_v1* manifest() {
  return ::ipp::detail::make_manifest(IPP_PLUGIN_NAME, IPP_PLUGIN_VERSION, IPP_PLUGIN_ABI_VERSION);
}
}  // namespace ipp_plugin_entry

BOOST_DLL_ALIAS(ipp_plugin_entry::manifest, ipp_plugin_manifest)
