# The mock HTTP receiver (test/support/mock_http.h). Any test CMakeLists may include this file;
# the target is defined once.
if(NOT TARGET presence_mock_http AND TARGET PkgConfig::HTTPLIB)
  add_library(presence_mock_http STATIC ${PROJECT_SOURCE_DIR}/test/support/mock_http.cpp)
  target_include_directories(presence_mock_http PUBLIC ${PROJECT_SOURCE_DIR})
  target_compile_options(presence_mock_http PRIVATE ${PRESENCE_WARNINGS})
  target_link_libraries(presence_mock_http PUBLIC PkgConfig::HTTPLIB Threads::Threads)
endif()
