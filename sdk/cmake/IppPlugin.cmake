# ipp_add_plugin(NAME SOURCES src... [VERSION v] [PLUGIN_NAME n] [OUTPUT_DIRECTORY dir])
#
# Builds the ipp plugin NAME.so from the given sources. The plugin is named NAME (override
# with PLUGIN_NAME) and lands in OUTPUT_DIRECTORY (default: the current binary directory).
# It is compiled with hidden visibility so that plugins never see each other's symbols; the
# only exported symbol is the manifest.
# Set before the guard: include() from another directory scope must see it too.
set(_IPP_PLUGIN_ENTRY "${CMAKE_CURRENT_LIST_DIR}/ipp_plugin_entry.cpp")
include_guard(GLOBAL)

function(ipp_add_plugin name)
  cmake_parse_arguments(ARG "" "VERSION;PLUGIN_NAME;OUTPUT_DIRECTORY;ABI_VERSION" "SOURCES" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "ipp_add_plugin(${name}): SOURCES is required")
  endif()
  if(NOT ARG_VERSION)
    set(ARG_VERSION "${PROJECT_VERSION}")
  endif()
  if(NOT ARG_VERSION)
    set(ARG_VERSION "0.0.0")
  endif()
  if(NOT ARG_PLUGIN_NAME)
    set(ARG_PLUGIN_NAME "${name}")
  endif()
  if(NOT ARG_PLUGIN_NAME MATCHES "^[A-Za-z_][A-Za-z0-9_]*$")
    message(FATAL_ERROR "ipp_add_plugin: plugin name '${ARG_PLUGIN_NAME}' must be an identifier")
  endif()
  if(NOT ARG_OUTPUT_DIRECTORY)
    set(ARG_OUTPUT_DIRECTORY "${CMAKE_CURRENT_BINARY_DIR}")
  endif()

  if(NOT EXISTS "${_IPP_PLUGIN_ENTRY}")
    message(FATAL_ERROR "ipp_add_plugin: the SDK's plugin entry source is missing")
  endif()
  add_library(${name} MODULE ${ARG_SOURCES} "${_IPP_PLUGIN_ENTRY}")
  target_link_libraries(${name} PRIVATE ipp::sdk)
  target_compile_features(${name} PRIVATE cxx_std_20)
  target_compile_definitions(${name} PRIVATE
    IPP_PLUGIN_NAME="${ARG_PLUGIN_NAME}" IPP_PLUGIN_VERSION="${ARG_VERSION}")
  if(ARG_ABI_VERSION)
    # Only for testing how the runtime refuses plugins of another ABI.
    target_compile_definitions(${name} PRIVATE IPP_PLUGIN_ABI_VERSION=${ARG_ABI_VERSION})
  endif()
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    LIBRARY_OUTPUT_DIRECTORY "${ARG_OUTPUT_DIRECTORY}")
  # The SDK's static code stays private to each plugin.
  target_link_options(${name} PRIVATE "LINKER:--exclude-libs,ALL")
endfunction()
