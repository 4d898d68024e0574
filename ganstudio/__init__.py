"""GAN Studio, the application. Qt-free engine code lives beside the Qt widget layer."""
